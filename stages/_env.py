"""Imported first by each stage script. `dvc` may run a stage with a `python` that lacks the project's
packages (`.venv/bin/dvc exp run ...` without activating the virtual environment): then the stage runs
again under the project's .venv, or, where there is none, stops with one line that says what to do.
Then the error handler is installed: Ctrl-C while the stage imports torch and its kin is one line too.
A model stage ends with `finish()`."""
import atexit
import os
import sys
from importlib.util import find_spec
from pathlib import Path

if find_spec("llmclf") is None or find_spec("torch") is None:
    venv = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
    if venv.is_file() and Path(sys.executable).absolute() != venv:
        os.execv(venv, [str(venv), *sys.argv])
    print(f"error: {sys.executable} lacks the project's packages (llmclf, torch): activate its virtual "
          "environment (`. .venv/bin/activate`, created by `make setup`) and run the command again", file=sys.stderr)
    sys.exit(2)

from llmclf.core import errors  # noqa: E402  (only once the environment is the project's)

STAGE = Path(sys.argv[0]).stem
errors.install(f"the {STAGE} stage; its earlier outputs are unchanged, `dvc repro` runs it again")


# A stage that runs a model claims its GPUs here, on import, before the stage imports torch: CUDA reads
# CUDA_VISIBLE_DEVICES once (llmclf.core.gpus). So every stage script imports in the usual order.
MODEL_STAGES = ("baseline", "train", "evaluate")


def _claim_gpus(stage: str) -> None:
    from llmclf.core import gpus, params, stagelock

    processes = 1
    if stage == "train":
        stagelock.die_with_parent()  # a killed dvc takes its training run along: no orphan racing the next run
        if "LOCAL_RANK" not in os.environ:  # not a worker: the launcher holds it for them
            stagelock.hold_lock(".checkpoints/train.lock", "training")  # before waiting for GPUs
        processes = params.load().train.num_processes
    gpus.claim(processes)  # this run's own GPUs beside other runs
    from llmclf.model.loading import quiet_notices  # torch loads from here on, seeing those GPUs alone

    quiet_notices()  # before the stage's imports: bitsandbytes prints one of them on import


if STAGE in MODEL_STAGES:
    _claim_gpus(STAGE)


def finish() -> None:
    """A model stage's last line, its outputs written: the exit handlers run and the streams are flushed,
    then the process ends without the interpreter's teardown of torch and its kin, which has nothing left
    to save and takes one to two seconds (docs/gpu.md, where an experiment's time goes)."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
