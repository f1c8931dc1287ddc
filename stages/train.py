"""Stage 5, train: the tutorial's QLoRA fine-tuning -> models/adapter (LoRA weights + head).
With train.num_processes > 1 (or run by `accelerate launch`) each GPU trains a share of every batch
(DDP); the main process alone logs and writes the outputs."""
import _env  # first: the project's Python environment, and this stage's GPUs before torch loads
import gc
import json
import shutil
import time
from pathlib import Path

import torch

from llmclf.core import errors, params
from llmclf.core.atomic import atomic_path, together, write_json
from llmclf.core.gpus import compute_dtype, peak_gpu_memory
from llmclf.core.hashing import sha256
from llmclf.core.runlog import phase, write_log
from llmclf.data.splits import read_split
from llmclf.evaluate import plots
from llmclf.evaluate.plots import curves_callback, end_curves
from llmclf.model.adapter import save_adapter
from llmclf.model.loading import load_classifier
from llmclf.model.lora import for_training
from llmclf.train import distributed, trainer as trainers
from llmclf.train.checkpoints import resume_or_reset, whole_run_loss

CHECKPOINTS = ".checkpoints/train"  # outside the tracked outputs; removed after a successful run
LIVE = ".checkpoints/train-live"  # DVCLive's curves while training; metrics/train once it has succeeded

errors.install("the train stage; `dvc repro` resumes from its last checkpoint, its earlier outputs are unchanged")
p = params.load()
distributed.relaunch(p.train.num_processes)
phase("data")
train_df, val_df = read_split("data/splits", "train"), read_split("data/splits", "val")
with open("data/splits/summary.json", encoding="utf-8") as f:
    auto_weights = json.load(f)["class_weights"]

args = trainers.training_args(p.train, CHECKPOINTS, len(train_df),
                              bf16=compute_dtype(p.model) == torch.bfloat16, seed=p.train.seed)
main = args.process_index == 0
soft = None
if p.train.teachers:  # distillation: the teachers' mean probabilities, before the model to train is loaded
    from llmclf.evaluate import ensemble  # here: its scoring imports cost a second that other runs skip

    soft, teachers, teacher_params = ensemble.soft_labels(p.train.teachers, train_df["text"].tolist(), p.data.classes)
    if main:
        print(f"train: soft labels from teachers {', '.join(teachers)} ({teacher_params:,} parameters), "
              f"{p.train.distill_alpha:.0%} of the loss; their accuracy on the training rows "
              f"{(soft.argmax(1) == train_df['label'].to_numpy()).mean():.4f}")
phase("model load")
model, tok = load_classifier(p.model, p.quant, p.data.classes, seed=p.train.seed, device=args.device)
model = for_training(model, p.lora, p.quant, p.train)
if main:
    model.print_trainable_parameters()

phase("tokenize")
train_rows = trainers.encode(tok, train_df, p.model.max_length, soft_labels=soft)
val_rows = trainers.encode(tok, val_df, p.model.max_length)
phase("trainer set-up")
live = curves_callback(LIVE) if main else None
clock = trainers.StepClock()
trainer = trainers.make_trainer(
    model, tok, p.train, train_rows, val_rows, args,
    class_weights=trainers.resolve_class_weights(p.train, auto_weights),
    callbacks=[clock, live] if live else [clock])

# a run killed midway left checkpoints: the same params, data and process count resume from the last one
stamp = {"params": params.values(p, params.stage_params("train", Path(__file__).parents[1] / "dvc.yaml")),
         "train_rows": sha256("data/splits/train.parquet"), "val_rows": sha256("data/splits/val.parquet"),
         "processes": args.world_size}
resume = distributed.on_main_process(resume_or_reset, CHECKPOINTS, stamp)
if resume and main:
    print(f"train: resuming from the last checkpoint, {resume}")
gc.freeze()  # what exists now (modules, rows) lives to the end: the Trainer's gc.collect() skips it
start = time.perf_counter()
with errors.writing(CHECKPOINTS):  # where an error of a full disk names no file: while saving a checkpoint
    result = trainer.train(resume_from_checkpoint=resume)
seconds = time.perf_counter() - start
if clock.times:  # trainer set-up ends as training begins; the loop includes the epochs' validation and saves
    phase("first step", at=clock.start)
    phase("loop", at=clock.times[0])
curves = list(trainer.state.log_history)  # training's own logs, before the best epoch is scored again below
tokens = sum(len(r["input_ids"]) for r in train_rows) * p.train.epochs
summary = {
    "train_loss": round(whole_run_loss(trainer.state.log_history, resume, result), 4),
    "train_steps": result.global_step,  # optimizer steps, one effective batch each
    "processes": args.world_size,
    "effective_batch": args.per_device_train_batch_size * args.world_size,  # train.batch_scaling decides
    "effective_lr": args.learning_rate,
} | ({"teachers": teachers, "teacher_parameters": teacher_params} if p.train.teachers else {})
timing = {
    "train_seconds": round(seconds, 1),
    "train_examples_per_s": round(len(train_rows) * p.train.epochs / seconds, 2),
    "train_tokens_per_s": round(tokens / seconds, 1),
} | clock.summary() | peak_gpu_memory() | ({"resumed": True} if resume else {})  # speeds then cover the resumed part
if p.train.eval_each_epoch:  # the best epoch's model is loaded: report its validation scores
    phase("validation")
    val = trainer.evaluate()  # every process scores its share
    summary |= {"val_accuracy": round(val["eval_accuracy"], 4),
                "val_balanced_accuracy": round(val["eval_balanced_accuracy"], 4)}

if main:
    phase("writes")
    if live:
        end_curves(live)
    with together():  # all or none: a full disk midway leaves each as it was
        with atomic_path("models/adapter", is_dir=True) as out:
            save_adapter(trainer.model, tok, out, p, summary)
        with atomic_path("metrics/train", is_dir=True) as out:
            if live:
                shutil.copytree(LIVE, out, dirs_exist_ok=True)
            phase("figures")
            plots.training_curves(curves, out / "training_curves.png")  # beside DVCLive's curves, for reports
            phase("writes")
        write_json(summary, "metrics/train.json")
    write_log("train", timing)
    shutil.rmtree(CHECKPOINTS, ignore_errors=True)
    shutil.rmtree(LIVE, ignore_errors=True)
    print("train:", summary)
distributed.leave(trainer.accelerator)  # together, once the outputs are written
_env.finish()
