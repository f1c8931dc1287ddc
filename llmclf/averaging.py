"""Weight averaging: an exponential moving average (EMA) of the trainable weights, evaluated during training
and kept at its end in place of the last step's weights."""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import get_ema_multi_avg_fn
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

EMA_FILE = "ema.safetensors"  # in a checkpoint, beside its weights


class EMA(TrainerCallback):
    """float32 averages of the trainable parameters only (LoRA and the head: a few MB, never the frozen base),
    on their devices, moved after every optimizer step by torch's EMA update (the foreach lerp that
    swa_utils.AveragedModel runs; AveragedModel itself deep-copies the whole model, frozen base included,
    and starts from the first step's weights without a warmup). After t steps the decay is
    min(decay, (1 + t) / (10 + t)): a short run ends near its late weights, not its initial ones.
    Under DDP each process keeps its own, identical average (its parameters are identical): no communication."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        self.averaged = {name: p.detach().to(torch.float32, copy=True) for name, p in self.params.items()}

    def on_step_end(self, args, state, control, **kwargs):
        t = state.global_step
        update = get_ema_multi_avg_fn(min(self.decay, (1 + t) / (10 + t)))
        update(list(self.averaged.values()), [p.detach().float() for p in self.params.values()], t)

    @torch.no_grad()
    def write(self, values: dict[str, torch.Tensor] | None = None) -> None:
        """Set the parameters to `values` (by name), the averages by default."""
        for name, p in self.params.items():
            p.copy_((self.averaged if values is None else values)[name])

    @contextlib.contextmanager
    def swapped_in(self):
        """The averages in the parameters within it; the trained weights back after it."""
        kept = {name: p.detach().clone() for name, p in self.params.items()}
        self.write()
        try:
            yield
        finally:
            self.write(kept)

    def save(self, checkpoint: str | Path) -> None:
        Path(checkpoint).mkdir(parents=True, exist_ok=True)
        save_file({name: a.contiguous() for name, a in self.averaged.items()}, Path(checkpoint) / EMA_FILE)

    def load(self, checkpoint: str | Path) -> None:
        saved = load_file(Path(checkpoint) / EMA_FILE)
        for name, a in self.averaged.items():
            a.copy_(saved[name])


class WeightAveraging:
    """A Trainer mixin. `ema_decay` > 0: the EMA above is kept while training; evaluation during training
    (the best epoch's choice, early stopping) scores it; each checkpoint holds it, so a resumed run goes on
    with it; and training ends with it in the model: the best epoch's where the best epoch is loaded."""

    def __init__(self, *args, ema_decay: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema = EMA(self.model, ema_decay) if ema_decay else None
        if self.ema is not None:
            self.add_callback(self.ema)

    def evaluate(self, *args, **kwargs):
        swap = self.ema is not None and self.is_in_train  # after training the model holds the average
        with self.ema.swapped_in() if swap else contextlib.nullcontext():
            return super().evaluate(*args, **kwargs)

    def _save_checkpoint(self, model, trial):
        if self.ema is not None and self.args.should_save:
            # written first: the checkpoint counts as complete once its trainer_state.json is written, last
            self.ema.save(Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        super()._save_checkpoint(model, trial)

    def train(self, resume_from_checkpoint: str | None = None, **kwargs):
        if self.ema is not None and resume_from_checkpoint:
            self.ema.load(resume_from_checkpoint)
        result = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        if self.ema is not None:
            best = self.state.best_model_checkpoint if self.args.load_best_model_at_end else None
            if best:  # its trained weights were loaded; its average replaces them
                self.ema.load(best)
            self.ema.write()
        return result
