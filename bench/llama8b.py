"""Llama-3-8B's shape through this project's QLoRA path on one GPU (or several, DDP), to size memory
and time at the tutorial's real scale. Llama-3-8B's weights cannot be had offline, its shape can: random bf16
weights (accuracy means nothing and is not reported), AG News texts as inputs.

    bash offline/run.sh py bench/llama8b.py --out $OUT/llama8b.json

1. Build LlamaForSequenceClassification with Llama-3-8B's config (32 layers, hidden 4096, 32 heads
   / 8 KV heads, intermediate 14336, vocab 128256, rope theta 500000) and 4 labels, random bf16
   weights on the GPU; save it as safetensors with the SmolLM2 tokenizer (its ids, < 49,152, are
   valid ids of the 128,256-token vocabulary, and its texts give AG News lengths).
2. For each setting, in one process: load it through `load_classifier` (nf4 with double
   quant on load: the time is "load and quantize"), `for_training` (LoRA, on the dequantized base
   where train.dense_base), train a fixed number of steps with `trainers.make_trainer`, then predict.
   Speeds skip the first steps (warm-up); `mfu` is model FLOPs utilization (MFU_FORMULA).
   - tutorial: batch 8, gradient checkpointing, max_length 512, its 32-row 4-bit inference loop;
   - project: presets/small-gpu.yaml (batch 64, no checkpointing, length-grouped), dense inference in
     sorted batches of 256;
   - project-checkpointing: the same with gradient checkpointing on, for smaller cards;
   - checkpointing...: levers within 24 GiB, and gpu-80gb...: the gpu preset on an 80 GB card (SETTINGS);
   - gpu: the preset as it is, for `--shape smollm2-135m` (the default base model's shape).
   --profile DIR: each setting's torch.profiler tables (DIR/SETTING-train.txt, -inference.txt) and, in the
   JSON, how busy the GPU was and how many GPU ops ran a step or batch: where a step's time goes.

    bash offline/run.sh py bench/llama8b.py --shape smollm2-135m --model-dir /tmp/smol-shape --settings gpu \
      --steps 20 --infer 4096 --profile $OUT/profile --out $OUT/smol.json
3. --processes 1 2: one setting's training alone (no prediction) on each process count in turn, each
   run a fresh `python bench/llama8b.py --run N` that `llmclf.train.distributed.relaunch` turns into N DDP
   processes (one GPU each), as the train stage does; every process loads the model folder built in
   step 1. --batch-scaling fixed (the default) keeps the effective batch and the steps of one process;
   weak gives each process the whole batch. Each run records its examples/s (the slowest process's
   time), steps and every rank's peak GPU memory; each run after the first its scaling against it
   (bench/multigpu.py's comparison, without accuracy):

    bash offline/run.sh py bench/llama8b.py --settings project --processes 1 2 --steps 20 --out llama8b-ddp.json

   20 steps are sized for 6 minutes on 2 H200s: the build (18.5 s on one H200), then per run the
   imports and each process's load and quantize (up to a minute) and 20 steps of batch 64 (5 of them
   warm-up; not timed yet with small-gpu's activation offload at this size).
"""
from __future__ import annotations

import argparse
import functools
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from accelerate.utils import gather_object
from torch.autograd import DeviceType
from transformers import LlamaConfig, LlamaForSequenceClassification, TrainerCallback

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchmark import device_name, sync, tutorial_predict  # noqa: E402
from multigpu import compare  # noqa: E402
from llmclf.cli import presets  # noqa: E402
from llmclf.core import gpus, params  # noqa: E402
from llmclf.data import readers  # noqa: E402
from llmclf.evaluate import inference  # noqa: E402
from llmclf.model.batching import token_batches  # noqa: E402
from llmclf.model.dense import dense_for_inference  # noqa: E402
from llmclf.model.loading import load_classifier  # noqa: E402
from llmclf.model.lora import for_training  # noqa: E402
from llmclf.train import distributed, trainer as trainers  # noqa: E402

LLAMA3_8B = dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                 intermediate_size=14336, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192,
                 rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False)
SHAPES = {"llama3-8b": LLAMA3_8B,  # tiny: the same code on a CPU in seconds (tests/test_bench.py)
          "tiny": dict(LLAMA3_8B, num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=128, vocab_size=49152),
          # the project's default base model's shape: where the gpu preset's step time goes (--profile)
          "smollm2-135m": dict(num_hidden_layers=30, hidden_size=576, num_attention_heads=9, num_key_value_heads=3,
                               intermediate_size=1536, vocab_size=49152, rope_theta=100000.0,
                               max_position_embeddings=8192, rms_norm_eps=1e-5, hidden_act="silu",
                               tie_word_embeddings=True)}
CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
CHECKPOINTING = ["train.gradient_checkpointing=true", "train.offload_activations=false"]  # nothing to offload
SETTINGS = {  # presets, then overrides
    "tutorial": ([], ["train.batch_size=8", "train.gradient_checkpointing=true", "inference.batch_size=32"]),
    "project": (["small-gpu"], []),
    "project-checkpointing": (["small-gpu"], ["train.gradient_checkpointing=true"]),
    # within 24 GiB: checkpointing instead of offload, then the dequantized base (16 GB of bf16 weights)
    # instead of dequantizing every layer twice a step (three times with the recomputation)
    "checkpointing": (["small-gpu"], CHECKPOINTING),
    "checkpointing-dense": (["small-gpu"], CHECKPOINTING + ["train.dense_base=true"]),
    # an 80 GB card: the gpu preset, chunks cut to what the 8B shape's activations fit in
    "gpu-80gb": (["gpu"], ["train.max_batch_tokens=4096"]),
    "gpu": (["gpu"], []),  # as the preset is: for --shape smollm2-135m
}
# Model FLOPs utilization: LoRA on a frozen base costs 2N FLOPs a token forward and 2N backward (gradients
# of the activations; the frozen weights get none), N the parameters without the embeddings; LoRA's own,
# attention's (short texts) and checkpointing's recomputation are not counted. Over the card's dense bf16 peak.
PROFILE_STEPS = 5  # --profile: optimizer steps traced after the timed ones
MFU_FORMULA = "4 x parameters without embeddings x tokens/s / dense bf16 peak"
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4}  # NVIDIA's dense (no sparsity) figures


def peak_tflops(device: str) -> float | None:
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in device), None)


def gib(value: int) -> float:
    return round(value / 2**30, 2)


def peak() -> int:
    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0


def reset_peak() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


class Profile(TrainerCallback):
    """torch.profiler over `steps` optimizer steps after the first `after`: what the host and the GPU did."""

    def __init__(self, after: int, steps: int):
        self.after, self.steps, self.prof, self.wall = after, steps, None, 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.after:
            self.prof, self.wall = profiled(), time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.prof and state.global_step == self.after + self.steps:
            sync()
            self.wall = time.perf_counter() - self.wall
            self.prof.stop()


def profiled():
    sync()
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if torch.cuda.is_available() else []))
    prof.start()
    return prof


def profile_report(prof, wall: float, units: int, unit: str, plural: str, path: Path) -> dict:
    """Per `unit` (a step, a batch): wall seconds, the GPU's busy seconds (its kernels' and copies' summed
    time; concurrent streams would count twice) and kernel launches. Tables to `path`: the ops by the GPU
    time they caused, then by the host time they took themselves."""
    events = prof.key_averages()
    device = [e for e in events if e.device_type == DeviceType.CUDA]
    busy = sum(e.self_device_time_total for e in device) / 1e6
    table = functools.partial(events.table, row_limit=40, max_name_column_width=90)
    path.write_text(f"{units} {plural} in {wall:.3f} s; the GPU busy {busy:.3f} s\n\n"
                    + (table(sort_by="self_device_time_total") + "\n" if device else "")
                    + table(sort_by="self_cpu_time_total") + "\n")
    return {plural: units, f"wall_seconds_per_{unit}": round(wall / units, 4),
            f"gpu_busy_seconds_per_{unit}": round(busy / units, 4), "gpu_busy_fraction": round(busy / wall, 3),
            f"gpu_ops_per_{unit}": round(sum(e.count for e in device) / units)}


def build(folder: Path, tokenizer: Path, shape: dict) -> dict:
    start = time.perf_counter()
    config = LlamaConfig(**shape, num_labels=len(CLASSES), pad_token_id=2)
    torch.set_default_dtype(torch.bfloat16)  # random init straight in bf16: no 32 GB float32 copy
    try:
        with gpus.default_device():
            model = LlamaForSequenceClassification(config)
    finally:
        torch.set_default_dtype(torch.float32)
    params_b = sum(p.numel() for p in model.parameters()) / 1e9
    model.save_pretrained(folder)
    for f in [*tokenizer.glob("tokenizer*"), *tokenizer.glob("special_tokens_map.json")]:
        (folder / f.name).write_bytes(f.read_bytes())
    del model
    reset_peak()
    return {"parameters_billion": round(params_b, 3), "build_and_save_seconds": round(time.perf_counter() - start, 1)}


def train_setting(name: str, folder: Path, texts, labels, steps: int, warmup: int, processes: int = 1,
                  batch_scaling: str = "fixed", profile: Path | None = None):
    """Load, add LoRA and train `steps` optimizer steps in this process, one of `processes`: the run's
    numbers (every rank's memory and time gathered), with the trainer, tokenizer and params. `profile`: a
    folder for torch.profiler's tables of PROFILE_STEPS steps after the warm-up (not timed then)."""
    presets_, overrides = SETTINGS[name]
    raw = presets.compose(presets_, [f"model.name={folder}", "train.eval_each_epoch=false",
                                    "train.checkpoint_steps=0", *overrides, f"train.batch_scaling={batch_scaling}"])
    p = params.parse(raw)
    prof = profile and Profile(steps, PROFILE_STEPS)  # after the timed steps: profiled ones run slower
    total = steps + (PROFILE_STEPS if prof else 0)
    n = total * distributed.per_device_batches(p.train, processes)[0] * processes  # `total` effective batches
    clock = trainers.StepClock(sync)
    with tempfile.TemporaryDirectory() as tmp:
        # first: under DDP it joins the process group and picks this process's GPU, where the model loads
        args = trainers.training_args(p.train, tmp, n, bf16=torch.cuda.is_available(), seed=p.train.seed)
        reset_peak()
        start = time.perf_counter()
        model, tok = load_classifier(p.model, p.quant, CLASSES, seed=p.train.seed, device=args.device)
        sync()
        load_s = time.perf_counter() - start
        after_load = peak()
        flops_per_token = 4 * model.num_parameters(exclude_embeddings=True)
        model = for_training(model, p.lora, p.quant, p.train)
        rows = trainers.encode(tok, pd.DataFrame({"text": texts[:n], "label": labels[:n]}), p.model.max_length)
        trainer = trainers.make_trainer(model, tok, p.train, rows, None, args, class_weights=[0.25] * 4,
                                        callbacks=[clock, prof] if prof else [clock])
        trainer.train()
    effective = args.per_device_train_batch_size * args.world_size
    timed = rows[warmup * effective:steps * effective]
    ranks = gather_object([{"rank": args.process_index, "load_and_quantize_seconds": round(load_s, 1),
                            "memory_after_load_gib": gib(after_load), "train_peak_gpu_memory_gib": gib(peak()),
                            "train_seconds_timed": clock.times[steps - 1] - clock.times[warmup - 1]}])
    train_s = max(r["train_seconds_timed"] for r in ranks)  # the slowest process sets the pace
    tokens_per_s = sum(len(r["input_ids"]) for r in timed) / train_s
    peak_tf = peak_tflops(device_name())
    out = {"setting": name, "presets": presets_, "overrides": overrides,
           "batch_size": p.train.batch_size, "gradient_checkpointing": p.train.gradient_checkpointing,
           "processes": args.world_size, "batch_scaling": p.train.batch_scaling, "effective_batch": effective,
           "train_steps": trainer.state.global_step, "train_steps_timed": steps - warmup,
           "train_examples_per_s": round(len(timed) / train_s, 2),
           "train_tokens_per_s": round(tokens_per_s, 1),
           "mfu": peak_tf and round(flops_per_token * tokens_per_s / (peak_tf * 1e12 * args.world_size), 4),
           **{k: ranks[0][k] for k in ("load_and_quantize_seconds", "memory_after_load_gib",
                                       "train_peak_gpu_memory_gib")},  # rank 0's; "ranks": each one's
           "ranks": [r | {"train_seconds_timed": round(r["train_seconds_timed"], 2)} for r in ranks]}
    if prof:
        out["train_profile"] = profile_report(prof.prof, prof.wall, PROFILE_STEPS, "step", "steps", profile / f"{name}-train.txt")
    return out, trainer, tok, p


def run_setting(name: str, folder: Path, texts, labels, steps: int, warmup: int, n_infer: int,
                profile: Path | None = None) -> dict:
    out, trainer, tok, p = train_setting(name, folder, texts, labels, steps, warmup, profile=profile)
    n = out["train_steps"] * out["effective_batch"]  # the rows after the training rows
    infer = texts[n:n + n_infer]
    model = trainer.model
    model.eval()
    reset_peak()
    if name == "tutorial":  # its loop: 32 rows at a time in data order, on the 4-bit model with LoRA
        tutorial_predict(model, tok, infer[:32])  # warm-up
        _, secs = tutorial_predict(model, tok, infer)
    else:
        model = dense_for_inference(model)
        predict = functools.partial(inference.predict_logits, model, tok, batch_size=p.inference.batch_size,
                                    max_length=p.model.max_length, max_tokens=p.inference.max_batch_tokens)
        predict(infer[:p.inference.batch_size])  # warm-up
        sync()
        start = time.perf_counter()
        predict(infer)
        sync()
        secs = time.perf_counter() - start
        if profile:
            prof = profiled()
            start = time.perf_counter()
            predict(infer)
            sync()
            wall = time.perf_counter() - start
            prof.stop()
            lengths = [len(ids) for ids in tok(infer, truncation=True, max_length=p.model.max_length)["input_ids"]]
            batches = sum(1 for _ in token_batches(lengths, p.inference.batch_size, p.inference.max_batch_tokens))
            out["inference_profile"] = profile_report(prof, wall, batches, "batch", "batches", profile / f"{name}-inference.txt")
    out |= {"inference_examples_per_s": round(len(infer) / secs, 1),
            "inference_peak_gpu_memory_gib": gib(peak())}
    del model, trainer
    print(json.dumps(out), flush=True)
    return out


def run_processes(args, n: int, out: Path) -> None:
    """One training run on n processes, as its own `--run n` invocation (relaunch exits the process it runs in)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--run", str(n), "--out", str(out),
           "--settings", *args.settings, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--model-dir", str(args.model_dir), "--train-csv", str(args.train_csv),
           "--batch-scaling", args.batch_scaling]
    done = subprocess.run(cmd)
    if done.returncode:
        sys.exit(f"error: the run on {n} process(es) failed (exit status {done.returncode}); its output is above")


def worker(args) -> None:
    """--run N: N DDP processes under `accelerate launch` (none for 1); rank 0 writes the run to --out."""
    distributed.relaunch(args.run)
    frame = readers.read_agnews_csv(args.train_csv).sample(frac=1, random_state=0)
    out, trainer, _, _ = train_setting(args.settings[0], args.model_dir, frame["text"].tolist(),
                                       frame["label"].tolist(), args.steps, args.warmup, args.run, args.batch_scaling)
    distributed.on_main_process(args.out.write_text, json.dumps(out, indent=2) + "\n")
    distributed.leave(trainer.accelerator)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, default=Path("/tmp/llmclf-gpu/tokenizer"))
    ap.add_argument("--train-csv", type=Path, default=ROOT / "data/ag_news/train.csv")
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per setting")
    ap.add_argument("--warmup", type=int, default=5, help="first steps left out of the speeds")
    ap.add_argument("--infer", type=int, default=1024, help="rows to predict")
    ap.add_argument("--model-dir", type=Path, default=Path("/tmp/llama3-8b-shape"))
    ap.add_argument("--shape", choices=list(SHAPES), default="llama3-8b")
    ap.add_argument("--processes", nargs="+", type=int, default=[],
                    help="training alone on each process count (DDP), first the reference; one setting")
    ap.add_argument("--batch-scaling", choices=["fixed", "weak"], default="fixed", help="train.batch_scaling")
    ap.add_argument("--profile", type=Path, help="a folder for torch.profiler's tables of each setting's "
                    f"training ({PROFILE_STEPS} steps after the timed ones) and inference (one more pass)")
    ap.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)  # one run of --processes
    args = ap.parse_args()
    if args.run:
        return worker(args)
    if args.processes and (len(args.settings) != 1 or min(args.processes) < 1):
        ap.error("--processes measures one setting (name it with --settings) on counts of 1 or more")
    if args.processes and args.profile:
        ap.error("--profile traces one process: leave out --processes")
    result = {"device": device_name(), "bf16_peak_tflops": peak_tflops(device_name()), "mfu_formula": MFU_FORMULA,
              "torch": torch.__version__,
              "transformers": __import__("transformers").__version__, "shape": args.shape, "config": SHAPES[args.shape]}
    if not (args.model_dir / "config.json").is_file():
        result |= build(args.model_dir, args.tokenizer, SHAPES[args.shape])
    if args.processes:
        result |= {"gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                   "runs": [], "comparisons": []}
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.processes:
                run_processes(args, n, Path(tmp) / f"{n}.json")
                result["runs"].append(json.loads((Path(tmp) / f"{n}.json").read_text()))
                result["comparisons"] = compare(result["runs"])
                args.out.write_text(json.dumps(result, indent=2) + "\n")  # after each: a timeout keeps the rest
        print(json.dumps(result["comparisons"], indent=2))
        return
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    frame = readers.read_agnews_csv(args.train_csv).sample(frac=1, random_state=0)
    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    result["results"] = []
    for name in args.settings:
        result["results"].append(run_setting(name, args.model_dir, texts, labels, args.steps, args.warmup, args.infer,
                                             args.profile))
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # after each: a timeout keeps the rest
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
