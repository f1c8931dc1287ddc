"""Benchmark, in one process on one machine: the tutorial's recipe as written against this project's
stage scripts with each GPU preset, on the same splits and base model; one JSON with every run and
the issue's targets checked against the tutorial's numbers of the same run.

    python bench/benchmark.py --out bench/results/run.json              # tutorial, gpu, qlora, small-gpu
    python bench/benchmark.py --recipes project --presets gpu --set train.batch_size=128
    python bench/benchmark.py --recipes project --presets gpu --profile prof --out prof/run.json

The tutorial's code path: nf4 + double quant, prepare_model_for_kbit_training defaults (gradient
checkpointing on), batch 8, max_length 512, padding per batch, eval + save each epoch, and its 32-row
`model(**inputs)` inference loop in data order. A preset's run: stages/baseline.py, train.py and
evaluate.py as subprocesses with params.yaml + the preset (NAME, or A+B for several), as `dvc repro`
would. Training speed is trainer.train()'s wall time in both (with the tutorial's per-epoch validation);
the docs show committed results through `python bench/tables.py`. `--profile DIR`
runs each stage under cProfile and writes where its host time went (DIR/PRESET-STAGE.txt: the functions
with the most time, own and cumulative; a wait for the GPU shows as time in the call that waited), for
finding what bounds a host-bound step; its speeds carry the profiler's overhead, so compare them with
nothing but other profiled runs. Each run also records the host's load before and after it (`host`: the
1-minute load average, every GPU's utilization and memory in use): a host-bound step slows down when
other runs share the host, so compare runs made beside the same load.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from llmclf.cli import presets  # noqa: E402
from llmclf.core import params, runlog  # noqa: E402
from llmclf.data import splits  # noqa: E402
from llmclf.evaluate import metrics  # noqa: E402
from llmclf.model import basemodel  # noqa: E402
from llmclf.train import trainer as trainers  # noqa: E402
from tables import bench_table, name  # noqa: E402

SPLITS = "data/splits"
EVAL_SPLITS = ("test", "official_test")


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or 'x86_64'})"


def gpu_states(csv: str) -> list[dict]:
    """Rows of `nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits`."""
    rows = [[cell.strip() for cell in line.split(",")] for line in csv.strip().splitlines()]
    return [{"index": int(i), "utilization_percent": int(u), "memory_used_mib": int(m)} for i, u, m in rows]


def host_state() -> dict:
    """What else loads the host as a run starts or ends: a host-bound step slows when other processes
    share the CPUs, so runs of one setting compare only with the load they ran beside. Every GPU of the
    host, visible to this process or not (nvidia-smi ignores CUDA_VISIBLE_DEVICES)."""
    state = {"load_average_1min": round(os.getloadavg()[0], 2)}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return state
    return state | ({"gpus": gpu_states(smi.stdout)} if smi.returncode == 0 else {})


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def tutorial_predict(model, tokenizer, texts: list[str]) -> tuple[np.ndarray, float]:
    """The tutorial's generate_predictions: 32 rows at a time in data order, padded per batch."""
    sync()
    start = time.perf_counter()
    outputs = []
    for i in range(0, len(texts), 32):
        inputs = tokenizer(texts[i:i + 32], return_tensors="pt", padding=True, truncation=True, max_length=512)
        inputs = {k: v.to("cuda" if torch.cuda.is_available() else "cpu") for k, v in inputs.items()}
        with torch.no_grad():
            outputs.append(model(**inputs)["logits"])
    pred = torch.cat(outputs, dim=0).argmax(axis=1).cpu().numpy()
    sync()
    return pred, time.perf_counter() - start


def run_tutorial(p: params.Params) -> dict:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, BitsAndBytesConfig,
                              DataCollatorWithPadding, TrainingArguments)

    wall = time.perf_counter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    frames = {s: splits.read_split(SPLITS, s) for s in ("train", "val", *EVAL_SPLITS)}
    train_df = frames["train"]
    class_weights = (1 / train_df.label.value_counts(normalize=True).sort_index()).tolist()
    class_weights = (torch.tensor(class_weights) / torch.tensor(class_weights).sum()).tolist()
    model_name = basemodel.resolve(p.model.name)
    quantization_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                             bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
    torch.manual_seed(p.base.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_name, quantization_config=quantization_config, num_labels=len(p.data.classes), device_map="auto",
        use_kernels=False)  # the tutorial's transformers fetched no kernels from the Hub (as llmclf's loads)
    lora_config = LoraConfig(r=16, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                             lora_dropout=0.05, bias="none", task_type="SEQ_CLS")
    model = prepare_model_for_kbit_training(model)
    model = get_peft_model(model, lora_config)
    tokenizer = AutoTokenizer.from_pretrained(model_name, add_prefix_space=True)
    tokenizer.pad_token_id = tokenizer.eos_token_id
    tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = False
    model.config.pretraining_tp = 1

    out: dict = {"recipe": "tutorial", "pad_token": tokenizer.pad_token, "pad_token_id": tokenizer.pad_token_id}
    for split in EVAL_SPLITS:
        pred, secs = tutorial_predict(model, tokenizer, frames[split]["text"].tolist())
        out[f"baseline_{split}"] = metrics.scores(frames[split]["label"], pred, p.data.classes)

    rows = {s: trainers.encode(tokenizer, frames[s], 512) for s in ("train", "val")}
    tmp = tempfile.mkdtemp(prefix="tutorial-")
    args = TrainingArguments(output_dir=tmp, learning_rate=1e-4, per_device_train_batch_size=8,
                             per_device_eval_batch_size=8, num_train_epochs=1, logging_steps=1,
                             weight_decay=0.01, eval_strategy="epoch", save_strategy="epoch",
                             load_best_model_at_end=True, report_to="none")
    trainer = trainers.ClassifierTrainer(
        model=model, args=args, train_dataset=rows["train"], eval_dataset=rows["val"], processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer=tokenizer), compute_metrics=trainers.compute_metrics,
        class_weights=class_weights)
    sync()
    start = time.perf_counter()
    trainer.train()
    sync()
    train_s = time.perf_counter() - start
    shutil.rmtree(tmp, ignore_errors=True)
    tokens = sum(len(r["input_ids"]) for r in rows["train"])
    out |= {"train_seconds": round(train_s, 1), "train_examples_per_s": round(len(rows["train"]) / train_s, 1),
            "train_tokens_per_s": round(tokens / train_s, 1)}

    model.eval()
    inference_rows, inference_s = 0, 0.0
    for split in EVAL_SPLITS:
        pred, secs = tutorial_predict(model, tokenizer, frames[split]["text"].tolist())
        out[split] = metrics.scores(frames[split]["label"], pred, p.data.classes)
        inference_rows, inference_s = inference_rows + len(pred), inference_s + secs
    out["inference_examples_per_s"] = round(inference_rows / inference_s, 1)
    out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None
    out["wall_seconds"] = round(time.perf_counter() - wall, 1)
    return out


# the tutorial has no TF-IDF or zero-shot baseline: leave them out (unless --set turns them on) so
# wall times compare like with like
NO_EXTRA_BASELINES = ["baseline.tfidf=false", "baseline.zero_shot=false"]


def run_project(preset_names: list[str], overrides: list[str], stages=("baseline", "train", "evaluate"),
                profile: Path | None = None) -> dict:
    """run_stages, or the error that stopped it: one preset's failure leaves the others' runs."""
    try:
        return run_stages(preset_names, overrides, stages, profile)
    except (subprocess.CalledProcessError, OSError, KeyError) as e:
        return {"recipe": "project", "presets": preset_names, "overrides": overrides, "error": str(e)[:500]}


# A script run as `python SCRIPT` would be, under cProfile. tqdm's monitor thread is kept from starting:
# from Python 3.12 on, cProfile records every thread's calls on one stack, so another thread's calls
# corrupt the main thread's times (threads that training itself starts, such as the DataLoader's pinning
# thread, still do: trust call counts and own times over cumulative ones there).
PROFILED = """import cProfile, runpy, sys, tqdm
tqdm.tqdm.monitor_interval = 0
stats, script = sys.argv[1:]
sys.argv, sys.path[0] = [script], script.rpartition("/")[0] or "."
cProfile.run("runpy.run_path(script, run_name='__main__')", stats)
"""


def profiled(script: str, stats: Path) -> list[str]:
    """The command that runs `script` under cProfile, its statistics written to `stats`."""
    return [sys.executable, "-c", PROFILED, str(stats), script]


def profile_summary(stats_file: Path, lines: int = 60) -> str:
    """A cProfile file as text: the functions with the most cumulative, then the most own time."""
    import io

    out = io.StringIO()
    stats = pstats.Stats(str(stats_file), stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(lines)
    return out.getvalue()


def run_stages(preset_names: list[str], overrides: list[str], stages=("baseline", "train", "evaluate"),
               profile: Path | None = None) -> dict:
    """The stage scripts with these params; metrics of a stage left out are its last run's. `profile`: a
    folder for each stage's cProfile summary (profile_summary)."""
    raw = presets.compose(preset_names, NO_EXTRA_BASELINES + overrides)
    saved = params.PARAMS_FILE.read_text(encoding="utf-8")
    wall = time.perf_counter()
    stage_seconds = {}
    try:
        params.PARAMS_FILE.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        for stage in stages:
            print(f"== {stage}", flush=True)
            stats = profile and profile / f"{'+'.join(preset_names)}-{stage}.prof"
            start = time.perf_counter()
            subprocess.run(profiled(f"stages/{stage}.py", stats) if stats else [sys.executable, f"stages/{stage}.py"],
                           check=True)
            stage_seconds[stage] = round(time.perf_counter() - start, 1)
            if stats:
                stats.with_suffix(".txt").write_text(profile_summary(stats), encoding="utf-8")
                stats.unlink()
    finally:
        params.PARAMS_FILE.write_text(saved, encoding="utf-8")
    load = lambda name: json.loads(Path(f"metrics/{name}.json").read_text())  # noqa: E731
    base, train, ev = load("baseline"), load("train"), load("eval")
    logs = {stage: runlog.read_log(stage) for stage in ("baseline", "train", "evaluate")}  # timings, memory
    scored = [s for s in EVAL_SPLITS if s in ev]
    out = {"recipe": "project", "presets": preset_names, "overrides": overrides,
           "params": {k: raw.get(k) for k in ("model", "quant", "lora", "train", "inference", "evaluate")}}
    if profile:
        out["profiled"] = True
    for split in scored:
        out[f"baseline_{split}"] = base["untrained_head"][split]
        out[split] = ev[split]
    out |= {k: logs["train"][k] for k in ("train_seconds", "train_examples_per_s", "train_tokens_per_s",
                                          "first_step_seconds", "median_step_seconds") if k in logs["train"]}
    out |= {k: train[k] for k in ("train_steps", "processes", "effective_batch", "effective_lr", "val_accuracy",
                                  "val_balanced_accuracy") if k in train}
    rows = {s: len(splits.read_split(SPLITS, s)) for s in scored}  # overall rate: total rows / total seconds
    overall = lambda speed: round(sum(rows.values()) / sum(rows[s] / speed[s] for s in scored), 1)  # noqa: E731
    out["inference_examples_per_s"] = overall(logs["evaluate"]["examples_per_s"])
    out["baseline_inference_examples_per_s"] = overall(logs["baseline"]["examples_per_s"]["untrained_head"])
    peaks = [log.get("peak_gpu_memory_gib") for log in logs.values()]
    out["peak_gpu_memory_gib"] = max(peaks) if None not in peaks else None
    out["peak_gpu_memory_gib_by_stage"] = dict(zip(("baseline", "train", "evaluate"), peaks))
    out["wall_seconds"] = round(time.perf_counter() - wall, 1)
    out["stage_seconds"] = stage_seconds  # each script's wall time: start-up and model loading included
    # where each stage's time went (runlog.phase); exit: after its log was written, to the process's end
    phases = {stage: logs[stage].get("phases", {}) for stage in stage_seconds}
    out["stage_phases"] = {stage: split | {"exit": round(stage_seconds[stage] - sum(split.values()), 2)}
                           for stage, split in phases.items()}
    return out


# The targets, as multiples of the tutorial's numbers of the same run: training examples/s, with peak
# GPU memory at most `memory` GiB (None: no higher than the tutorial's); inference examples/s
# (evaluate and the untrained-head baseline). Accuracy within 0.5 point on test and official test.
TARGETS = {"gpu": {"train": 50, "memory": 24, "inference": 20},
           "qlora": {"train": 25, "memory": 24},
           "small-gpu": {"train": 5, "memory": None}}
ACCURACY_POINTS = 0.5


def targets(result: dict) -> list[dict]:
    """Each preset run's targets against the tutorial's run in the same result: measured, required, met."""
    tutorial = next((r for r in result["results"] if r["recipe"] == "tutorial"), None)
    checks = []
    for r in result["results"]:
        goal = TARGETS.get(name(r)) if r["recipe"] == "project" else None
        if goal is None or tutorial is None:
            continue
        check = lambda what, got, need, met: checks.append(  # noqa: E731
            {"preset": name(r), "target": what, "measured": got, "required": need, "met": bool(met)})
        if "error" in r:
            check("runs", r["error"], "no error", False)
            continue
        speed = round(r["train_examples_per_s"] / tutorial["train_examples_per_s"], 1)
        check("training x tutorial", speed, goal["train"], speed >= goal["train"])
        limit = tutorial["peak_gpu_memory_gib"] if goal["memory"] is None else goal["memory"]
        check("peak GiB", r["peak_gpu_memory_gib"], limit, r["peak_gpu_memory_gib"] <= limit)
        if "inference" in goal:
            for key in ("inference_examples_per_s", "baseline_inference_examples_per_s"):
                times = round(r[key] / tutorial["inference_examples_per_s"], 1)
                check(f"{key.removesuffix('_examples_per_s').replace('_', ' ')} x tutorial", times, goal["inference"],
                      times >= goal["inference"])
        for split in EVAL_SPLITS:
            change = round(100 * (r[split]["accuracy"] - tutorial[split]["accuracy"]), 2)
            check(f"{split} accuracy change, points", change, -ACCURACY_POINTS, change >= -ACCURACY_POINTS)
    return checks


def targets_table(checks: list[dict]) -> str:
    lines = ["| preset | target | measured | required | met |", "|---|---|---|---|---|"]
    lines += [f"| {c['preset']} | {c['target']} | {c['measured']} | {'≤' if 'GiB' in c['target'] else '≥'} "
              f"{c['required']} | {'yes' if c['met'] else '**no**'} |" for c in checks]
    return "\n".join(lines)


def summary(result: dict) -> str:
    """What a run prints at its end: its runs, then the targets."""
    return f"{bench_table(result['results'])}\n\n{targets_table(targets(result))}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", choices=["tutorial", "project"], default=["project", "tutorial"])
    ap.add_argument("--presets", nargs="*", default=list(TARGETS),
                    help="one project run each, in this order (A+B: presets A then B)")
    ap.add_argument("--set", nargs="*", default=[], dest="overrides",
                    help="key=value params overrides (every run; the tutorial reads model.name only)")
    ap.add_argument("--out", type=Path, help="JSON file to write")
    ap.add_argument("--profile", type=Path, help="folder for each project stage's cProfile summary")
    args = ap.parse_args()
    if args.out is None:
        ap.error("--out is required")
    p = params.parse(presets.compose([], args.overrides))  # the tutorial takes model.name, seed, classes
    splits = json.loads(Path(SPLITS, "summary.json").read_text())["splits"]
    result = {"device": device_name(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "transformers": __import__("transformers").__version__, "model": p.model.name,
              # settings outside params that change speed (the CUDA allocator, visible GPUs)
              "env": {k: v for k, v in os.environ.items() if k.startswith(("PYTORCH_", "CUDA_", "NCCL_"))},
              "splits": {s: v["rows"] for s, v in splits.items()}, "results": []}
    runs = [("project", names.split("+")) for names in args.presets] if "project" in args.recipes else []
    runs = sorted(runs + [("tutorial", [])] * ("tutorial" in args.recipes),
                  key=lambda run: args.recipes.index(run[0]))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    for recipe, names in runs:
        before = host_state()
        result["results"].append(run_tutorial(p) if recipe == "tutorial" else
                                 run_project(names, args.overrides, profile=args.profile))
        result["results"][-1]["host"] = {"before": before, "after": host_state()}
        result["targets"] = targets(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # after each run: a timeout keeps the others
        print(f"\n{bench_table(result['results'])}", flush=True)
    print(f"\n{result['device']}, {p.model.name}, splits {result['splits']}\n{summary(result)}")


if __name__ == "__main__":
    main()
