"""Training checkpoints: one every N steps, and resuming a run cut short only where its stamp matches."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from transformers import TrainerCallback


class CheckpointEvery(TrainerCallback):
    """Save a resumable checkpoint every `steps` optimizer steps, besides each epoch's. (Trainer's own
    save_steps would have to match the per-epoch evaluation that picks the best model.)"""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if self.steps and state.global_step % self.steps == 0:
            control.should_save = True
        self.on_epoch_end(args, state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        # a checkpoint's logs cover every step up to it: whole_run_loss adds them to a resumed run's loss
        control.should_log |= control.should_save


def whole_run_loss(history: list[dict], resumed: str | None, result) -> float:
    """The mean training loss over every step of the run. The Trainer's (`result.training_loss`) covers the steps
    of its own call only; those before checkpoint-N, which a resumed run started from, are in its logs (`history`),
    each the mean since the one before."""
    if resumed is None:
        return result.training_loss
    start, total, last = int(resumed.rsplit("-", 1)[1]), 0.0, 0
    for log in history:
        if "loss" in log and log["step"] <= start:
            total, last = total + log["loss"] * (log["step"] - last), log["step"]
    return (total + result.training_loss * (result.global_step - start)) / (last + result.global_step - start)


def resume_or_reset(folder: str | Path, stamp: dict) -> str | None:
    """The last complete checkpoint in `folder` of a run with this exact stamp (params and data), for
    training to resume from; otherwise None, and the folder is emptied and stamped for this run.
    A checkpoint cut short by a kill (no trainer_state.json, written last) is dropped."""
    folder = Path(folder)
    key = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()
    stamp_file = folder / "run.sha256"
    if stamp_file.is_file() and stamp_file.read_text() == key:
        done = []
        for ckpt in folder.glob("checkpoint-*"):
            if (ckpt / "trainer_state.json").is_file():
                done.append(ckpt)
            else:
                shutil.rmtree(ckpt)
        if done:
            return str(max(done, key=lambda c: int(c.name.split("-")[-1])))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stamp_file.write_text(key)
    return None
