"""SkippedRows: records made in another process reach the main process through the channel; each process sends a
row once; without a channel nothing is sent. (Spawned dataloader workers: test_reliability, through the trainer.)"""

import multiprocessing

from modeling_unicl.data import SkippedRows


def _record_in_child(skipped: SkippedRows, rows) -> None:
    for row in rows:
        skipped.add(row, f"file 'img{row}.jpg': OSError: truncated")


def test_rows_recorded_in_a_child_process_are_collected():
    skipped = SkippedRows()
    assert skipped.add(1, "embedded bytes: OSError") and not skipped.add(1, "again")  # new in this process once
    skipped.open_channel("fork")
    child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(skipped, [1, 4, 4, 9]))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    skipped.close_channel()
    assert dict(skipped) == {
        1: "embedded bytes: OSError",  # known here before: the child did not send it again
        4: "file 'img4.jpg': OSError: truncated",
        9: "file 'img9.jpg': OSError: truncated",
    }
    assert len(skipped) == 3 and 4 in skipped and sorted(skipped) == [1, 4, 9]


def test_without_a_channel_records_stay_in_their_process():
    skipped = SkippedRows()
    child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(skipped, [3]))
    child.start()
    child.join(timeout=60)
    skipped.collect()
    skipped.close_channel()
    assert child.exitcode == 0 and dict(skipped) == {}
