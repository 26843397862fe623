"""The 2-process DDP check of `unicl_loss` (children of `test_loss.test_distributed_matches_single_process`).

Children import only torch and `loss_unicl.py` (by file path, not the package: no transformers import), so they
start in about a second."""

import datetime
import gc
import importlib.util
import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

_spec = importlib.util.spec_from_file_location(
    "_unicl_loss_for_dist_test", Path(__file__).resolve().parents[1] / "modeling_unicl" / "loss_unicl.py"
)
_loss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loss)
unicl_loss = _loss.unicl_loss


class TwoTowers(torch.nn.Module):
    def __init__(self, d_img=6, d_txt=5, d=4):
        super().__init__()
        self.image_tower = torch.nn.Linear(d_img, d)
        self.text_tower = torch.nn.Linear(d_txt, d)
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, x_img, x_txt):
        img = F.normalize(self.image_tower(x_img), dim=-1)
        txt = F.normalize(self.text_tower(x_txt), dim=-1)
        return img, txt, self.log_scale.exp()


def raw_batch(b=8):
    g = torch.Generator().manual_seed(123)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 4, 5])[:b]  # 0 and 1 repeat across the two halves
    return torch.randn(b, 6, generator=g), torch.randn(b, 5, generator=g), labels


WORLD = 2
# (name, local_loss, rows of the global batch on each rank)
SCENARIOS = [
    ("global", False, (range(0, 4), range(4, 8))),
    ("local", True, (range(0, 4), range(4, 8))),
    ("global_uneven", False, (range(0, 5), range(5, 8))),
]


def dist_worker(rank, init_method, out_dir):
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_gather as all_gather_with_grad
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    # loopback only: gloo otherwise resolves the host name to pick an interface, which can stall on some machines
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group(
        "gloo", init_method=init_method, rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=120)
    )
    try:
        result = {}
        # all_gather backward: every rank uses every gathered slice once, so each rank's own
        # input receives the sum over ranks of those gradients, i.e. WORLD x ones.
        x = torch.ones(3, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated in recent torch, still public
            gathered = all_gather_with_grad(x)
        sum(t.sum() for t in gathered).backward()
        result["all_gather_grad"] = x.grad.clone()

        x_img, x_txt, labels = raw_batch()
        model = None
        for name, local_loss, rows in SCENARIOS:
            torch.manual_seed(0)
            model = DDP(TwoTowers())
            idx = torch.tensor(list(rows[rank]))
            img, txt, s = model(x_img[idx], x_txt[idx])
            loss = unicl_loss(img, txt, labels[idx], s, gather_distributed=True, local_loss=local_loss)
            loss.backward()
            result[name] = {
                "loss": loss.detach(),
                "grads": {n: p.grad.clone() for n, p in model.module.named_parameters()},
            }
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
        # Free every DDP Reducer (and the autograd graph holding gloo work) while the process group is alive and
        # both ranks are still here: a Reducer freed after `destroy_process_group`, at function exit, joins gloo's
        # worker thread while holding the GIL that thread needs - a deadlock seen in torch 2.13 (1 run in ~10).
        del model, img, txt, s, loss, gathered, x
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


