"""Data-parallel training (DDP): the relaunch under `accelerate launch`, each process's batch share, main-process work."""
from __future__ import annotations

import math
import os
import sys

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from .errors import UserError
from .params import Train


def relaunch(num_processes: int) -> None:
    """Replace this process by `accelerate launch` of the same script on `num_processes` processes (DDP),
    unless that is one or the script already runs under a launcher (accelerate and torchrun set LOCAL_RANK).
    --multi_gpu is accelerate's torchrun launcher: on a machine without GPUs it runs CPU processes over
    gloo (its --cpu would need MPI); port 0 takes a free port, so parallel experiments do not collide."""
    if num_processes == 1 or "LOCAL_RANK" in os.environ:
        return
    if torch.cuda.is_available() and num_processes > torch.cuda.device_count():
        raise UserError(f"train.num_processes {num_processes}: only {torch.cuda.device_count()} GPU(s) visible")
    os.execv(sys.executable, [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                              "--num_processes", str(num_processes), "--num_machines", "1", "--mixed_precision", "no",
                              "--dynamo_backend", "no", "--main_process_port", "0", *sys.argv])


def per_device_batches(train: Train, world_size: int) -> tuple[int, int]:
    """batch_scaling fixed: train.batch_size is the effective batch whatever the number of processes: each
    takes its share (evaluation batches only change speed: rounded up). weak: each process takes batch_size."""
    if train.batch_scaling == "weak":
        return train.batch_size, train.eval_batch_size
    if train.batch_size % world_size:
        raise UserError(f"train.batch_size {train.batch_size} does not split evenly over {world_size} processes; "
                        f"use a multiple of {world_size}")
    return train.batch_size // world_size, math.ceil(train.eval_batch_size / world_size)


def learning_rate(train: Train, world_size: int) -> float:
    """weak: train.lr times the square root of the process count, the growth of the effective batch. The
    square root, not linear scaling: that rule is SGD's; for Adam-type optimizers (the Trainer's AdamW) the
    square root keeps the update's noise as with one process, and a linear 2x on an lr tuned near its top
    for one process risks divergence."""
    return train.lr * math.sqrt(world_size) if train.batch_scaling == "weak" else train.lr


def on_main_process(fn, *args):
    """fn(*args) run by the main process alone (it may write files); every process gets its result."""
    result = [fn(*args) if PartialState().is_main_process else None]
    return broadcast_object_list(result)[0]
