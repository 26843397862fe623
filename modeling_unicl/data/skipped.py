"""`SkippedRows`: the unreadable rows a training dataset replaced, including those met in dataloader workers.

A record is keyed by the row (an int, map-style datasets) or by a string (streamed data: `"{shard}#{sample key}"`,
or the shard itself), and has a kind ("unreadable image" by default; the streaming kinds are in
`modeling_unicl.data.shards`), counted by `counts()`.

A dataloader worker works on its own copy of the dataset, so what it records stays in its process. While the
recorder's channel is open (`open_channel`, called in the main process before the workers start; `UniCLTrainer`
does it when training begins), a worker also sends each row it records through a multiprocessing queue, and
`collect()` in the main process adds what arrived. The samples themselves never carry the records.

The queue is made with the workers' start method (fork, spawn or forkserver): its lock cannot be shared with
processes started another way. Each process sends a row at most once, so the queue carries at most one record per
unreadable row and worker process.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections import Counter
from collections.abc import Mapping

__all__ = ["SkippedRows"]

UNREADABLE_IMAGE = "unreadable image"  # the kind of every record of a map-style dataset


class SkippedRows(Mapping):
    """row (or sample key) -> description (e.g. "file 'a.jpg': OSError: ...") of every unreadable row met in this
    process or collected from its dataloader workers. A read-only mapping; `add` records, `collect` receives,
    `kind` / `counts` tell the kinds apart."""

    def __init__(self):
        self._rows: dict[int | str, str] = {}
        self._kinds: dict[int | str, str] = {}
        self._queue = None
        self._main_pid = os.getpid()

    def __getitem__(self, row: int | str) -> str:
        return self._rows[row]

    def __iter__(self):
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._rows!r})"

    def add(self, row: int | str, description: str, kind: str = UNREADABLE_IMAGE) -> bool:
        """Records an unreadable row (an int) or sample (a string key); True when this process had not met it before
        (the caller then logs it)."""
        row = row if isinstance(row, str) else int(row)
        if row in self._rows:
            return False
        self._rows[row], self._kinds[row] = description, kind
        if self._queue is not None and os.getpid() != self._main_pid:
            self._queue.put((row, description, kind))
        return True

    def kind(self, row: int | str) -> str:
        """The kind of a record ("unreadable image", "truncated tar", ...)."""
        return self._kinds[row]

    def counts(self) -> dict[str, int]:
        """Records per kind."""
        return dict(Counter(self._kinds.values()))

    def open_channel(self, start_method: str | None = None) -> None:
        """Lets the dataloader workers started from now on report to this process. `start_method` is the
        DataLoader's `multiprocessing_context` ("fork", "spawn", "forkserver"; None: the default)."""
        if self._queue is None:
            self._main_pid = os.getpid()
            self._queue = multiprocessing.get_context(start_method).Queue()

    def collect(self) -> None:
        """Adds what the workers sent since the last call (in the main process; nothing to do without a channel)."""
        if self._queue is None or os.getpid() != self._main_pid:
            return
        while True:
            try:
                row, description, kind = self._queue.get_nowait()
            except queue.Empty:
                return
            if row not in self._rows:
                self._rows[row], self._kinds[row] = description, kind

    def close_channel(self) -> None:
        """Collects the last records and releases the queue."""
        self.collect()
        if self._queue is not None and os.getpid() == self._main_pid:
            self._queue.close()
            self._queue = None
