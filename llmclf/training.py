"""The tutorial's Trainer: class-weighted cross-entropy, dynamic padding, evaluation by balanced accuracy."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments

from .errors import UserError
from .inference import collate, token_batches
from .params import Train


def offload_to_host(devices: tuple[str, ...] = ("cuda",), min_bytes: int = 1 << 20):
    """Within it, a tensor that autograd saves for backward (an activation on one of `devices`, of at least
    `min_bytes`; never a parameter) is copied to host memory, pinned where CUDA is, and copied back when
    backward needs it. GPU memory then holds the weights and one layer's working set; the copies ride the
    compute stream (ordered, no host wait), so a step that is bound by kernel launches hides them."""
    pin = torch.cuda.is_available()

    def pack(t: torch.Tensor):
        if (t.device.type not in devices or isinstance(t, torch.nn.Parameter)
                or t.numel() * t.element_size() < min_bytes):
            return t
        host = torch.empty(t.size(), dtype=t.dtype, layout=t.layout, pin_memory=pin)
        host.copy_(t, non_blocking=pin)
        return t.device, host

    def unpack(packed):
        if isinstance(packed, torch.Tensor):
            return packed
        device, host = packed
        return host.to(device, non_blocking=pin)

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack)


class WeightedTrainer(Trainer):
    """Cross-entropy with per-class weights (and optional label smoothing) on the classifier's logits.
    `max_batch_tokens` > 0: a batch of more padded tokens runs as row chunks of at most that many, each
    chunk's loss its share of the batch's, gradients accumulated: the same update in bounded memory.
    `offload_activations`: what backward needs waits in host memory (offload_to_host)."""

    # compute_loss returns a per-batch mean, not a sum over num_items_in_batch: let the Trainer
    # divide by the accumulation steps, or gradient accumulation would scale gradients wrong.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, class_weights: list[float] | None = None, label_smoothing: float = 0.0,
                 max_batch_tokens: int = 0, offload_activations: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.label_smoothing = label_smoothing
        self.max_batch_tokens = max_batch_tokens
        self.offload_activations = offload_activations

    @functools.cached_property
    def _flops_per_token(self) -> int:
        return 6 * self.model.num_parameters(exclude_embeddings=True)

    def floating_point_ops(self, inputs) -> int:
        """The model's own estimate (6 x tokens x parameters without embeddings), with the parameter count
        taken once rather than by walking every module on every step."""
        return self._flops_per_token * inputs["input_ids"].numel()

    def _loss_denominator(self, labels: torch.Tensor):
        """The weighted mean's denominator, sum(w_y) over the rows: cross_entropy's own mean divides by it."""
        return len(labels) if self.class_weights is None else self.class_weights.to(labels.device)[labels.long()].sum()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels").long()
        denominator = inputs.pop("loss_denominator", None)  # a chunk's: its whole batch's
        offload = self.offload_activations and torch.is_grad_enabled()
        with offload_to_host() if offload else contextlib.nullcontext():
            outputs = model(**inputs)
        logits = outputs.logits.float()
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        loss = F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.label_smoothing, reduction="sum")
        loss = loss / (self._loss_denominator(labels) if denominator is None else denominator)
        return (loss, outputs) if return_outputs else loss

    def _chunks(self, inputs) -> list[tuple[torch.Tensor, dict]] | None:
        """The batch as row chunks within max_batch_tokens, longest rows first, each cut to its own longest
        row and carrying the batch's loss denominator, with the batch rows it holds; None if it fits whole
        (known from its shape, without waiting for the GPU)."""
        mask = inputs["attention_mask"]
        if not self.max_batch_tokens or mask.numel() <= self.max_batch_tokens:
            return None
        lengths = mask.sum(dim=1).tolist()
        denominator = self._loss_denominator(inputs["labels"])
        chunks = []
        for idx in token_batches(lengths, len(lengths), self.max_batch_tokens):
            rows, width = torch.as_tensor(idx.copy(), device=mask.device), lengths[idx[0]]
            chunk = {k: v[rows, :width] if v.dim() == 2 else v[rows] for k, v in inputs.items()}
            chunks.append((rows, chunk | {"loss_denominator": denominator}))
        return chunks

    def training_step(self, model, inputs, num_items_in_batch=None):
        chunks = self._chunks(inputs)
        if chunks is None:
            return super().training_step(model, inputs, num_items_in_batch)
        loss = 0
        for i, (_, chunk) in enumerate(chunks):  # under DDP, gradients are averaged once, after the last chunk
            with self.accelerator.no_sync(model) if i < len(chunks) - 1 else contextlib.nullcontext():
                loss = loss + super().training_step(model, chunk, num_items_in_batch)
        return loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        chunks = self._chunks(inputs)
        if chunks is None:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        parts = [super(WeightedTrainer, self).prediction_step(model, chunk, prediction_loss_only, ignore_keys)
                 for _, chunk in chunks]
        loss = sum(part[0] for part in parts)  # each chunk's share of the batch's loss
        if prediction_loss_only:
            return loss, None, None
        chunked = torch.cat([part[1] for part in parts])
        logits = torch.empty_like(chunked)
        logits[torch.cat([rows for rows, _ in chunks])] = chunked  # back to the batch's own row order
        return loss, logits, inputs["labels"]


def encode(tok, df: pd.DataFrame, max_length: int) -> list[dict]:
    """Tokenize once, unpadded: the collator pads each batch to its own longest row."""
    enc = tok(df["text"].tolist(), truncation=True, max_length=max_length)
    return [{"input_ids": ids, "attention_mask": mask, "labels": int(y)}
            for ids, mask, y in zip(enc["input_ids"], enc["attention_mask"], df["label"])]


def compute_metrics(pred) -> dict[str, float]:
    logits, labels = pred
    y = np.argmax(logits, axis=1)
    return {"balanced_accuracy": balanced_accuracy_score(labels, y), "accuracy": accuracy_score(labels, y)}


def resolve_class_weights(train: Train, auto_weights: list[float], n_classes: int) -> list[float] | None:
    if train.class_weights == "none":
        return None
    if train.class_weights == "auto":
        return auto_weights
    if len(train.class_weights) != n_classes:
        raise ValueError(f"train.class_weights has {len(train.class_weights)} values for {n_classes} classes")
    return list(train.class_weights)


def relaunch(num_processes: int) -> None:
    """Replace this process by `accelerate launch` of the same script on `num_processes` processes (DDP),
    unless that is one or the script already runs under a launcher (accelerate and torchrun set LOCAL_RANK).
    --multi_gpu is accelerate's torchrun launcher: on a machine without GPUs it runs CPU processes over
    gloo (its --cpu would need MPI); port 0 takes a free port, so parallel experiments do not collide."""
    if num_processes == 1 or "LOCAL_RANK" in os.environ:
        return
    if torch.cuda.is_available() and num_processes > torch.cuda.device_count():
        raise UserError(f"train.num_processes {num_processes}: only {torch.cuda.device_count()} GPU(s) on this machine")
    os.execv(sys.executable, [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                              "--num_processes", str(num_processes), "--num_machines", "1", "--mixed_precision", "no",
                              "--dynamo_backend", "no", "--main_process_port", "0", *sys.argv])


def per_device_batches(train: Train, world_size: int) -> tuple[int, int]:
    """train.batch_size is the effective batch whatever the number of processes: each takes its share.
    (Evaluation batches only change speed: rounded up.)"""
    if train.batch_size % world_size:
        raise UserError(f"train.batch_size {train.batch_size} does not split evenly over {world_size} processes; "
                        f"use a multiple of {world_size}")
    return train.batch_size // world_size, math.ceil(train.eval_batch_size / world_size)


def training_args(train: Train, out_dir: str, n_train: int, bf16: bool, seed: int) -> TrainingArguments:
    """Also sets up the processes when launched for DDP: the args' device is this process's GPU."""
    strategy = "epoch" if train.eval_each_epoch else "no"
    steps = math.ceil(n_train / train.batch_size) * math.ceil(train.epochs)
    use_cpu = not torch.cuda.is_available()  # say so: processes launched without GPUs then train together over gloo
    batch, eval_batch = per_device_batches(train, PartialState(cpu=use_cpu).num_processes)
    kwargs = dict(
        output_dir=out_dir, learning_rate=train.lr, per_device_train_batch_size=batch,
        per_device_eval_batch_size=eval_batch, num_train_epochs=train.epochs,
        weight_decay=train.weight_decay, lr_scheduler_type=train.lr_scheduler,
        warmup_steps=math.ceil(train.warmup_ratio * steps), logging_steps=train.logging_steps,
        eval_strategy=strategy, save_strategy=strategy, load_best_model_at_end=train.eval_each_epoch,
        metric_for_best_model="balanced_accuracy", greater_is_better=True, save_total_limit=2,
        save_only_model=False,  # optimizer and scheduler state too: checkpoints resume
        bf16=bf16, seed=seed, data_seed=seed, report_to="none", disable_tqdm=False, use_cpu=use_cpu,
        optim=train.optimizer, logging_nan_inf_filter=train.nan_inf_filter,
        ddp_find_unused_parameters=False,  # LoRA and the head all take part in every step: no search each step
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


def on_main_process(fn, *args):
    """fn(*args) run by the main process alone (it may write files); every process gets its result."""
    result = [fn(*args) if PartialState().is_main_process else None]
    return broadcast_object_list(result)[0]


class CheckpointEvery(TrainerCallback):
    """Save a resumable checkpoint every `steps` optimizer steps, besides each epoch's. (Trainer's own
    save_steps would have to match the per-epoch evaluation that picks the best model.)"""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if self.steps and state.global_step % self.steps == 0:
            control.should_save = True


def resumable(folder: str | Path, stamp: dict) -> str | None:
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


def live_callback(folder: str):
    """DVCLive curves in `folder`. An explicit Live, since the default one rewrites dvc.yaml (the
    curves are declared there by hand). None where dvclive is not installed (a bare GPU machine)."""
    try:
        from dvclive import Live
        from transformers.integrations import DVCLiveCallback
    except ImportError:
        print("train: dvclive is not installed; no training curves are written")
        return None
    return DVCLiveCallback(live=Live(folder, dvcyaml=False, save_dvc_exp=False, report=None))


def make_trainer(model, tok, train: Train, train_rows, val_rows, args: TrainingArguments,
                 class_weights: list[float] | None, callbacks=()) -> WeightedTrainer:
    callbacks = [*callbacks, CheckpointEvery(train.checkpoint_steps)]
    if train.early_stopping_patience and train.eval_each_epoch:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=train.early_stopping_patience))
    return WeightedTrainer(
        model=model, args=args, train_dataset=train_rows, eval_dataset=val_rows if train.eval_each_epoch else None,
        processing_class=tok, data_collator=functools.partial(collate, pad_id=tok.pad_token_id), compute_metrics=compute_metrics,
        class_weights=class_weights, label_smoothing=train.label_smoothing, max_batch_tokens=train.max_batch_tokens,
        offload_activations=train.offload_activations, callbacks=callbacks)
