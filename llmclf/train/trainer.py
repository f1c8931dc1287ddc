"""The tutorial's Trainer: class-weighted cross-entropy, dynamic padding, evaluation by balanced accuracy."""
from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import PartialState
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments

from ..core.errors import UserError
from ..core.params import Train
from ..model.batching import SOFT_LABELS, collate, model_inputs, needs_mask
from .checkpoints import CheckpointEvery
from .distributed import learning_rate, per_device_batches
from .memory import BoundedMemory


class WeightedLossTrainer(Trainer):
    """Cross-entropy with per-class weights (and optional label smoothing) on the classifier's logits."""

    # compute_loss returns a per-batch mean, not a sum over num_items_in_batch: let the Trainer
    # divide by the accumulation steps, or gradient accumulation would scale gradients wrong.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, class_weights: list[float] | None = None, label_smoothing: float = 0.0,
                 distill_alpha: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.label_smoothing = label_smoothing
        self.distill_alpha = distill_alpha  # the soft labels' share of the loss, where rows carry them

    @functools.cached_property
    def _flops_per_token(self) -> int:
        return 6 * self.model.num_parameters(exclude_embeddings=True)

    def floating_point_ops(self, inputs) -> int:
        """The Trainer's own estimate (6 x tokens x parameters without embeddings), with the parameter
        count taken once rather than by walking every module on every step."""
        return self._flops_per_token * inputs["input_ids"].numel()

    def _loss_denominator(self, labels: torch.Tensor):
        """The weighted mean's denominator, sum(w_y) over the rows: cross_entropy's own mean divides by it."""
        return len(labels) if self.class_weights is None else self.class_weights.to(labels.device)[labels.long()].sum()

    @functools.cached_property
    def _needs_mask(self) -> bool:
        return needs_mask(self.model)

    def _forward(self, model, inputs):
        return model(**model_inputs(inputs, self._needs_mask))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels").long()
        soft = inputs.pop(SOFT_LABELS, None)  # distillation's targets: training rows, with train.teachers
        denominator = inputs.pop("loss_denominator", None)  # a chunk's: its whole batch's
        denominator = self._loss_denominator(labels) if denominator is None else denominator
        outputs = self._forward(model, inputs)
        logits = outputs.logits.float()
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        loss = self._label_loss(logits, labels, weight, soft)
        return (loss / denominator, outputs) if return_outputs else loss / denominator

    def _label_loss(self, logits: torch.Tensor, labels: torch.Tensor, weight, soft) -> torch.Tensor:
        """Summed over rows: the labels' cross-entropy; with distillation's targets `soft` (rows' class
        probabilities), (1 - alpha) of it plus alpha times the soft labels' cross-entropy, each row
        weighted as its label's is (its class weight)."""
        hard = F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.label_smoothing, reduction="sum")
        if soft is None:
            return hard
        soft_ce = -(soft.to(logits.device) * F.log_softmax(logits, dim=-1)).sum(-1)
        if weight is not None:
            soft_ce = soft_ce * weight[labels]
        return (1 - self.distill_alpha) * hard + self.distill_alpha * soft_ce.sum()


class ClassifierTrainer(BoundedMemory, WeightedLossTrainer):
    """The weighted loss, with the memory levers (token-capped chunks, activation offload); a loss that is
    not finite stops training."""

    # The Trainer itself would log the previous losses' mean instead and go on to save NaN weights. The first
    # non-finite loss is noted on the device each step, without waiting for it, and looked at where the
    # Trainer waits for the GPU anyway: before it logs (every train.logging_steps, and at the end) and
    # before it saves a checkpoint. So nothing is saved from such weights, and no step waits for the GPU.
    _first_nonfinite = None  # (step, loss) on the device; step 0: none yet

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        value = loss.detach().float()
        if self._first_nonfinite is None:
            self._first_nonfinite = (torch.zeros((), dtype=torch.long, device=value.device), torch.zeros_like(value))
        step, first = self._first_nonfinite
        new = ~torch.isfinite(value) & (step == 0)
        self._first_nonfinite = (torch.where(new, self.state.global_step + 1, step), torch.where(new, value, first))
        return loss

    def _stop_if_nonfinite(self) -> None:
        if self._first_nonfinite is not None and (step := int(self._first_nonfinite[0])):
            raise UserError(f"train: the loss is {self._first_nonfinite[1].item()} at step {step}; training "
                            "stopped and no adapter was written. Lower train.lr, or check train.class_weights "
                            "and model.dtype")

    def log(self, logs, *args, **kwargs):
        self._stop_if_nonfinite()
        super().log(logs, *args, **kwargs)

    def _save_checkpoint(self, model, trial):
        self._stop_if_nonfinite()
        super()._save_checkpoint(model, trial)


def encode(tok, df: pd.DataFrame, max_length: int, soft_labels: np.ndarray | None = None) -> list[dict]:
    """Tokenize once, unpadded: the collator pads each batch to its own longest row. `soft_labels`: each
    row's class probabilities from distillation's teachers."""
    enc = tok(df["text"].tolist(), truncation=True, max_length=max_length)
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": int(y)}
            for ids, mask, y in zip(enc["input_ids"], enc["attention_mask"], df["label"])]
    if soft_labels is not None:
        for row, soft in zip(rows, soft_labels):
            row[SOFT_LABELS] = soft
    return rows


def compute_metrics(pred) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score  # a second's import, for eval_each_epoch alone

    logits, labels = pred
    y = np.argmax(logits, axis=1)
    return {"balanced_accuracy": balanced_accuracy_score(labels, y), "accuracy": accuracy_score(labels, y)}


def resolve_class_weights(train: Train, auto_weights: list[float]) -> list[float] | None:
    if train.class_weights == "none":
        return None
    if train.class_weights == "auto":
        return auto_weights
    return list(train.class_weights)  # params.load checked: one per class


def training_args(train: Train, out_dir: str, n_train: int, bf16: bool, seed: int) -> TrainingArguments:
    """Also sets up the processes when launched for DDP: the args' device is this process's GPU."""
    strategy = "epoch" if train.eval_each_epoch else "no"
    use_cpu = not torch.cuda.is_available()  # say so: processes launched without GPUs then train together over gloo
    processes = PartialState(cpu=use_cpu).num_processes
    batch, eval_batch = per_device_batches(train, processes)
    steps = math.ceil(n_train / (batch * processes)) * math.ceil(train.epochs)
    kwargs = dict(
        output_dir=out_dir, learning_rate=learning_rate(train, processes), per_device_train_batch_size=batch,
        per_device_eval_batch_size=eval_batch, num_train_epochs=train.epochs,
        weight_decay=train.weight_decay, lr_scheduler_type=train.lr_scheduler,
        warmup_steps=math.ceil(train.warmup_ratio * steps), logging_steps=train.logging_steps,
        eval_strategy=strategy, save_strategy=strategy, load_best_model_at_end=train.eval_each_epoch,
        metric_for_best_model="balanced_accuracy", greater_is_better=True, save_total_limit=2,
        save_only_model=False,  # optimizer and scheduler state too: checkpoints resume
        bf16=bf16, seed=seed, data_seed=seed, report_to="none", disable_tqdm=False, use_cpu=use_cpu,
        optim=train.optimizer, logging_nan_inf_filter=train.nan_inf_filter,
        ddp_find_unused_parameters=False,  # LoRA and the head all take part in every step: no search each step
        # rows go whole to `collate`, which takes what it needs: the Trainer would otherwise drop every key
        # the model's forward does not name, distillation's soft labels among them
        remove_unused_columns=False,
    )  # gradient checkpointing is left off here: add_lora already applied it as train.gradient_checkpointing says
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    if train.group_by_length:  # the option's name changed within transformers 5
        if "train_sampling_strategy" in fields:
            kwargs["train_sampling_strategy"] = "group_by_length"
        else:
            kwargs["group_by_length"] = True
    args = TrainingArguments(**kwargs)
    # One process trains on one GPU. Left alone, the Trainer would use every visible GPU (DataParallel,
    # or for a 4-bit model one GPU with the batch multiplied by their count); more GPUs: train.num_processes.
    args._n_gpu = min(args.n_gpu, 1)
    return args


def autocast_adapter_inputs(model) -> None:
    """Under bf16 autocast, as the Trainer runs with args.bf16, peft's LoRA layers need not cast their input
    to their float32 weights' dtype first: autocast casts it back to bf16 for the matmul anyway. Without
    that round trip, each adapter's input stays bf16 (two copies fewer a layer forward, two backward, and
    its dropout in bf16): the same matmuls in fewer kernels (bench/results/README.md, profiles)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for m in model.modules():
        if isinstance(m, BaseTunerLayer):
            m.cast_input_dtype_enabled = False


def make_trainer(model, tok, train: Train, train_rows, val_rows, args: TrainingArguments,
                 class_weights: list[float] | None, callbacks=()) -> ClassifierTrainer:
    callbacks = [*callbacks, CheckpointEvery(train.checkpoint_steps)]
    if args.bf16:
        autocast_adapter_inputs(model)
    if train.early_stopping_patience and train.eval_each_epoch:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=train.early_stopping_patience))
    return ClassifierTrainer(
        model=model, args=args, train_dataset=train_rows, eval_dataset=val_rows if train.eval_each_epoch else None,
        processing_class=tok, compute_metrics=compute_metrics,
        data_collator=functools.partial(collate, pad_id=tok.pad_token_id), class_weights=class_weights,
        label_smoothing=train.label_smoothing, max_batch_tokens=train.max_batch_tokens,
        offload_activations=train.offload_activations, distill_alpha=train.distill_alpha, callbacks=callbacks)


class StepClock(TrainerCallback):
    """When training began and each optimizer step ended. `sync` (torch.cuda.synchronize) waits for the
    GPU at each step's end; without it the clock is the host's, and no step waits for the GPU (in a
    host-bound loop, the two agree)."""

    def __init__(self, sync=None):
        self.sync, self.start, self.times = sync, None, []

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.sync:
            self.sync()
        self.times.append(time.perf_counter())

    def summary(self) -> dict[str, float]:
        """The first step's seconds (start-up: kernels loaded, memory allocated, the longest batch first)
        and the median of the others'."""
        if not self.times:
            return {}
        later = [b - a for a, b in zip(self.times, self.times[1:])]
        return {"first_step_seconds": round(self.times[0] - self.start, 2)} | (
            {"median_step_seconds": round(statistics.median(later), 3)} if later else {})

