"""Runs under ``torchrun``: this process's rank, its device, the process group and torch's threads."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from rankiqa.devices import resolve_device

if TYPE_CHECKING:
    from rankiqa.train import TrainConfig


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run folder."""
        return self.rank == 0


def setup_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Read the ``torchrun`` environment, pick this process's device (``cuda:LOCAL_RANK`` under
    ``torchrun``) and join the process group (gloo on CPU, nccl on GPU) when there are several."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    info = Distributed(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    name = resolve_device(device_name)
    use_cuda = name.startswith("cuda")
    if use_cuda:
        device = torch.device(device_name if device_name.startswith("cuda:") and world_size == 1 else f"cuda:{info.local_rank}")
        torch.cuda.set_device(device)
    else:
        device = torch.device(name)  # "cpu", "mps", ...
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info, device


def set_threads(config: TrainConfig) -> None:
    """torch threads: ``config.threads``, else (without ``OMP_NUM_THREADS``) the cores shared out
    among the processes of this machine."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
