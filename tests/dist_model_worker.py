"""The 2-process check that `UniCLModel.forward` gathers across ranks only when told to (children of
`test_layout.test_a_forward_with_labels_on_one_rank_alone_never_blocks`)."""

import datetime
import gc
import os

import torch

WORLD = 2


def model_worker(rank, init_method, out_dir):
    import torch.distributed as dist

    from conftest import tiny_config
    from modeling_unicl import UniCLModel

    torch.set_num_threads(1)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only: resolving the host name can stall on some machines
    dist.init_process_group(
        "gloo", init_method=init_method, rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60)
    )
    try:
        torch.manual_seed(0)
        model = UniCLModel(tiny_config()).eval()
        generator = torch.Generator().manual_seed(1)
        pixel_values = torch.randn(6, 3, 32, 32, generator=generator)
        input_ids = torch.randint(1, 400, (6, 7), generator=generator)
        input_ids[:, -1] = 49407  # end of text
        labels = torch.tensor([0, 1, 0, -1, -2, 1])
        rows = slice(0, 3) if rank == 0 else slice(3, 6)
        result = {}
        with torch.no_grad():
            dist.barrier()
            if rank == 0:  # rank 1 is in the barrier below and never joins a collective: a gather would block
                alone = model(input_ids=input_ids[rows], pixel_values=pixel_values[rows], labels=labels[rows])
                result["alone"] = alone.loss
                # the same, computed without any process group in sight
                out = model(input_ids=input_ids[rows], pixel_values=pixel_values[rows])
                from modeling_unicl import unicl_loss

                result["alone_expected"] = unicl_loss(out.image_embeds, out.text_embeds, labels[rows], out.logit_scale)
            dist.barrier()
            gathered = model(
                input_ids=input_ids[rows], pixel_values=pixel_values[rows], labels=labels[rows], gather_distributed=True
            )
            result["gathered"] = gathered.loss
            result["global_expected"] = model(input_ids=input_ids, pixel_values=pixel_values, labels=labels).loss
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
        del model, gathered
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()
