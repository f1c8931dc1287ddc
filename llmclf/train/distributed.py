"""Data-parallel training (DDP): the relaunch under `accelerate launch`, each process's batch share, main-process work."""
from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from ..core import errors
from ..core.errors import UserError
from ..core.params import Train


def relaunch(num_processes: int) -> None:
    """Run the same script on `num_processes` processes (DDP) under `accelerate launch`, in this process,
    and exit with them; return at once if that is one or the script already runs under a launcher
    (accelerate and torchrun set LOCAL_RANK). --multi_gpu is accelerate's torchrun launcher: on a machine
    without GPUs it runs CPU processes over gloo (its --cpu would need MPI); port 0 takes a free port, so
    parallel experiments do not collide. A worker's UserError comes back through a file (errors.ERROR_FILE)
    and is raised here, one line instead of the launcher's report of a failed child."""
    if num_processes == 1 or "LOCAL_RANK" in os.environ:
        return
    if torch.cuda.is_available() and num_processes > torch.cuda.device_count():
        raise UserError(f"train.num_processes {num_processes}: only {torch.cuda.device_count()} GPU(s) visible")
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = launch_command_parser().parse_args([
        "--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", "0", *sys.argv])
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its failure report: see below
    with tempfile.TemporaryDirectory() as tmp:
        message = Path(tmp) / "error"
        os.environ[errors.ERROR_FILE] = str(message)
        try:
            launch_command(args)
        except ChildFailedError as e:
            if message.is_file():
                raise UserError(message.read_text(encoding="utf-8").removeprefix("error: ")) from None
            codes = sorted({f.exitcode for f in e.failures.values()})
            sys.exit(f"error: {len(e.failures)} of {num_processes} training processes failed (exit status "
                     f"{', '.join(map(str, codes))}); the first one's traceback is above")
        except SignalException as e:  # dvc stopped, or its parent died: the workers are stopped already
            raise KeyboardInterrupt(e.sigval) from None
        finally:
            del os.environ[errors.ERROR_FILE]
    sys.exit(0)


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


def leave(accelerator) -> None:
    """Every process waits for the others, takes the process group down and, with several processes, exits
    at once: tearing the objects down would free the model's DDP reducer and with it the gloo group, whose
    destructor joins a worker thread that may still be freeing a finished broadcast's tensors and waits for
    the GIL the main thread holds, a deadlock at exit (seen under load even after the wait). The caller's
    outputs are written by then; the streams are flushed first."""
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if accelerator.num_processes > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def on_main_process(fn, *args):
    """fn(*args) run by the main process alone (it may write files); every process gets its result."""
    result = [fn(*args) if PartialState().is_main_process else None]
    return broadcast_object_list(result)[0]
