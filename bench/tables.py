"""The tables of numbers in README.md, docs/*.md and bench/results/README.md, made from the committed
result files (bench/results/, metrics/, docs/gpu/). Each table sits between `<!-- table:NAME -->` and
`<!-- /table -->`; NAME is a function below.

    python bench/tables.py           # rewrite every table from the files
    python bench/tables.py --check   # change nothing; exit 1 naming each table that differs

tests/test_results.py runs the check: a number in a doc cannot part from its file.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

RESULTS = "bench/results"
ACC = f"{RESULTS}/accuracy"
FILES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")), f"{RESULTS}/README.md"]
BLOCK = re.compile(r"(<!-- table:([\w-]+) -->\n)(.*?)(<!-- /table -->)", re.S)
MODELS = {"smollm2-135m-instruct": "SmolLM2-135M", "all-minilm-l6-v2": "MiniLM-L6", "gemma-3-270m": "Gemma 3 270M",
          "all-mpnet-base-v2": "MPNet-base"}
TABLES = {}


def shown(fn):
    """A table the docs show, named as the function with dashes."""
    TABLES[fn.__name__.replace("_", "-")] = fn
    return fn


def load(path: str):
    text = (ROOT / path).read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.endswith(".yaml") else json.loads(text)


def md(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def f4(x: float) -> str:
    return f"{x:.4f}"


def acc(scores: dict | None, split: str) -> str:
    return f4(scores[split]["accuracy"]) if scores and split in scores else ""


def spread(values: list[float]) -> str:
    """Lowest – highest, and the difference in points."""
    return f"{f4(min(values))} – {f4(max(values))} ({100 * (max(values) - min(values)):.2f} pt)"


# ---------------------------------------------------------------- bench/benchmark.py's runs

def name(r: dict) -> str:
    if r["recipe"] == "tutorial":
        return "tutorial as written"
    return "+".join(r["presets"]) + (" " + " ".join(r["overrides"]) if r["overrides"] else "")


def bench_table(results: list[dict]) -> str:
    """One row a run of bench/benchmark.py; speeds also as multiples of the tutorial's where it is among them."""
    tutorial = next((r for r in results if r["recipe"] == "tutorial" and "error" not in r), None)
    times = lambda r, k: f" ({r[k] / tutorial[k]:.1f}x)" if tutorial and r is not tutorial else ""  # noqa: E731
    cols = ["run", "test acc before → after", "official test acc before → after", "train ex/s",
            "train tok/s", "infer ex/s", "peak GiB", "wall s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        if "error" in r:
            lines.append(f"| {name(r)} | failed: {r['error'][:80]} |" + " |" * (len(cols) - 2))
            continue
        before_after = lambda s: f"{r[f'baseline_{s}']['accuracy']:.4f} → {r[s]['accuracy']:.4f}"  # noqa: E731
        lines.append("| " + " | ".join([
            name(r), before_after("test"), before_after("official_test"),
            f"{r['train_examples_per_s']:,.1f}{times(r, 'train_examples_per_s')}", f"{r['train_tokens_per_s']:,.0f}",
            f"{r['inference_examples_per_s']:,.0f}{times(r, 'inference_examples_per_s')}",
            f"{r['peak_gpu_memory_gib']:.2f}", f"{r['wall_seconds']:.0f}"]) + " |")
    return "\n".join(lines)


def headline(result: dict) -> str:
    """The README's one-row summary of the gpu preset against the tutorial in a bench/benchmark.py result."""
    tutorial = next(r for r in result["results"] if r["recipe"] == "tutorial")
    gpu = next(r for r in result["results"] if r["recipe"] == "project" and name(r) == "gpu")
    return (f"| `gpu` preset, {result['device']} | {gpu['official_test']['accuracy']:.4f} "
            f"(tutorial {tutorial['official_test']['accuracy']:.4f}) | "
            f"{gpu['train_examples_per_s'] / tutorial['train_examples_per_s']:.1f}x | "
            f"{gpu['inference_examples_per_s'] / tutorial['inference_examples_per_s']:.1f}x | "
            f"{gpu['peak_gpu_memory_gib']:.1f} GiB |")


# ---------------------------------------------------------------- README.md

@shown
def cpu_reference() -> str:
    ev, base = load("metrics/eval.json")["test"], load("metrics/baseline.json")
    rows = [[label, f"{s['accuracy']:.4f}", f"{s['macro_f1']:.4f}", f"{s['ece']:.4f}"] for label, s in [
        ("untrained head (the tutorial's baseline)", base["untrained_head"]["test"]),
        ("TF-IDF + logistic regression", base["tfidf_logreg"]["test"]),
        ("zero-shot prompt of the base model", base["zero_shot"]["test"])]]
    rows.append(["**fine-tuned (QLoRA, SmolLM2-135M)**", f"**{ev['accuracy']:.4f}**", f"{ev['macro_f1']:.4f}",
                 f"{ev['ece']:.4f}"])
    return md(["model", "test accuracy", "macro F1", "ECE"], rows)


@shown
def gpu_headline() -> str:
    header = ["run", "official test accuracy", "training speed, × tutorial", "inference speed, × tutorial",
              "peak GPU memory"]
    return md(header, []) + headline(load(f"{RESULTS}/gpu-presets/h100-gpu.json")) + "\n"


# ---------------------------------------------------------------- docs/gpu.md

@shown
def gpu_presets() -> str:
    return bench_table(load(f"{RESULTS}/gpu-presets/h100.json")["results"]) + "\n"


def bench_row(path: str) -> dict:
    return load(path)["results"][0]


@shown
def gpu_no_gain() -> str:
    """The gpu preset against one change at a time, each a run on one NVIDIA H200."""
    levers = f"{RESULTS}/tuning/h200-gpu-levers"
    runs = [("`gpu` as is", f"{levers}/as-is.json"),
            ("`PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`", f"{levers}/expandable-segments.json"),
            ("`-S train.max_batch_tokens=32768`", f"{levers}/tokens-32768.json"),
            ("`-S lora.dropout=0.0`", f"{levers}/no-lora-dropout.json"),
            ("`-S train.batch_size=512 -S train.lr=3e-3 -S train.max_batch_tokens=24576`",
             f"{RESULTS}/tuning/h200-gpu-b512.json")]
    rows = []
    for label, path in runs:
        r = bench_row(path)
        rows.append([label, r["train_examples_per_s"], r["median_step_seconds"], f"{r['peak_gpu_memory_gib']:.2f}",
                     f"{r['inference_examples_per_s']:,.0f}", acc(r, "test"), acc(r, "official_test"),
                     f"`{path.removeprefix(RESULTS + '/')}`"])
    return md(["run", "train ex/s", "median step s", "peak GiB", "infer ex/s", "test acc", "official test acc",
               "file"], rows)


@shown
def gpu_inference_batch() -> str:
    folder = f"{RESULTS}/tuning/h100-inference-batch"
    rows = []
    for run in ("256-a", "512", "1024-a", "256-b", "128", "1024-b", "256-c"):  # the order they ran in
        r = bench_row(f"{folder}/{run}.json")
        inference = r["params"]["inference"]
        rows.append([f"{inference['batch_size']:,} / {inference['max_batch_tokens']:,}",
                     f"{r['inference_examples_per_s']:,.0f}", f"{r['baseline_inference_examples_per_s']:,.0f}",
                     acc(r, "official_test"), f"`{folder.removeprefix(RESULTS + '/')}/{run}.json`"])
    return md(["`inference.batch_size` / `max_batch_tokens`", "evaluate ex/s", "baseline ex/s",
               "official test acc", "file"], rows)


def setting(r: dict) -> str:
    if r["setting"] == "tutorial":
        return "the tutorial: batch 8, gradient checkpointing"
    return " ".join([*(f"`{p}`" for p in r["presets"]), *(f"`-S {o}`" for o in r["overrides"])])


@shown
def llama8b() -> str:
    shape, dense = (load(f"{RESULTS}/llama8b/h200-llama3-8b-{n}.json")["results"] for n in ("shape", "dense"))
    inference = {"tutorial": "4-bit, 32 rows a batch", "project": "dense bf16, sorted batches of 256"}
    rows = [[setting(r), r["train_examples_per_s"], f"{r['train_peak_gpu_memory_gib']} GiB",
             inference[r["setting"].removesuffix("-checkpointing")], r["inference_examples_per_s"],
             f"{r['inference_peak_gpu_memory_gib']} GiB"]
            for r in [shape[0], *dense]]
    return md(["setting", "train ex/s", "peak GPU memory, training", "inference", "inference ex/s",
               "peak GPU memory, inference"], rows)


TURNAROUND = {  # the gpu preset on one NVIDIA H100, each file one run; "host": a fresh GPU machine
    "the cuts, a fresh host's first run": f"{RESULTS}/turnaround/h100-after.json",
    "0b95c23, the same host next": f"{RESULTS}/turnaround/h100-before.json",
    "5bc9231, another fresh host's first run": f"{RESULTS}/turnaround/h100-committed-first.json",
    "5bc9231, the same host next": f"{RESULTS}/turnaround/h100-committed-warm.json",
    "SDPA without cuDNN, adapter inputs left to autocast: a third host's first run":
        f"{RESULTS}/turnaround/h100-levers-after-first.json",
    "af1b89c, the same host next": f"{RESULTS}/turnaround/h100-levers-before.json",
    "SDPA without cuDNN, adapter inputs left to autocast: the same host next": f"{RESULTS}/turnaround/h100-levers-after.json",
    "the lock's transformers, peft and accelerate: a fourth host's first run":
        f"{RESULTS}/turnaround/h100-lock-first.json",
    "the lock's libraries, the same host next": f"{RESULTS}/turnaround/h100-lock-warm.json",
    # a fifth host, nine runs one after another (the others in the inference-batch table)
    "a fifth host, run 1 (with the tutorial): inference in batches of 1,024 rows": f"{RESULTS}/gpu-presets/h100.json",
    "run 2: inference in batches of 256 rows": f"{RESULTS}/tuning/h100-inference-batch/256-a.json",
    "run 5: 256 rows": f"{RESULTS}/tuning/h100-inference-batch/256-b.json",
    "run 8: 256 rows": f"{RESULTS}/tuning/h100-inference-batch/256-c.json",
    "run 9 (with the tutorial): 256 rows, as committed": f"{RESULTS}/gpu-presets/h100-gpu.json",
}
CURRENT = TURNAROUND["run 9 (with the tutorial): 256 rows, as committed"]


@shown
def gpu_phases() -> str:
    """Each stage's wall time by phase (runlog.phase), the `gpu` preset alone on one GPU."""
    run = bench_row(CURRENT)
    stages = run["stage_phases"]
    order = ["start-up", "data", "model load", "tokenize", "trainer set-up", "first step", "loop", "scoring",
             "metrics", "figures", "writes", "exit"]  # the stages' order of work
    names = [n for n in order if any(n in phases for phases in stages.values())]
    rows = [[stage, *(f"{phases[n]:.1f}" if n in phases else "" for n in names), f"{run['stage_seconds'][stage]:.1f}"]
            for stage, phases in stages.items()]
    return md(["stage", *names, "wall s"], rows)


@shown
def gpu_turnaround() -> str:
    """What `dvc exp run` waits for: the stages' walls, before and after, with the loop's and scoring's speeds."""
    rows = []
    for name, path in TURNAROUND.items():
        r = bench_row(path)
        walls = r["stage_seconds"]
        rows.append([name, f"`{path.removeprefix(RESULTS + '/')}`", *(f"{walls[s]:.1f}" for s in walls),
                     f"{walls['train'] + walls['evaluate']:.1f}", f"{sum(walls.values()):.1f}",
                     r["train_examples_per_s"], f"{r['inference_examples_per_s']:,.0f}", acc(r, "official_test")])
    return md(["code", "file", "baseline s", "train s", "evaluate s", "train + evaluate s", "pipeline s",
               "train ex/s", "infer ex/s", "official test acc"], rows)


LEVERS = f"{RESULTS}/profile/h100-gpu-levers"
STEP_PROFILES = {  # bench/llama8b.py --profile, one NVIDIA H100, one host: af1b89c, then the levers
    "135M shape, `gpu`: af1b89c": f"{LEVERS}/smol-before.json",
    "135M shape, `gpu`: SDPA without cuDNN, adapter inputs left to autocast": f"{LEVERS}/smol-after.json",
    "8B shape, checkpointing + dense base: af1b89c": f"{LEVERS}/l8-before.json",
    "8B shape, checkpointing + dense base: SDPA without cuDNN, adapter inputs left to autocast": f"{LEVERS}/l8-after.json",
}


@shown
def gpu_step_profile() -> str:
    """Speeds, and where the profiled steps and batches spent the GPU's time, before and after the levers."""
    rows = []
    for label, path in STEP_PROFILES.items():
        r = bench_row(path)
        train, infer = r["train_profile"], r["inference_profile"]
        rows.append([label, r["train_examples_per_s"], f"{100 * r['mfu']:.1f}%", f"{100 * train['gpu_busy_fraction']:.0f}%",
                     f"{train['gpu_ops_per_step']:,}", f"{r['inference_examples_per_s']:,.0f}",
                     f"{100 * infer['gpu_busy_fraction']:.0f}%", f"`{path.removeprefix(RESULTS + '/')}`"])
    return md(["run", "train ex/s", "MFU", "GPU busy, training", "GPU ops a step", "infer ex/s", "GPU busy, inference",
               "file"], rows)


# ---------------------------------------------------------------- Liger Kernel, measured and removed

LIGER = "Liger Kernel's fused RMSNorm, SwiGLU and RoPE"


@shown
def gpu_liger() -> str:
    rows = []
    for label, path in (("`gpu`", TURNAROUND["the cuts, a fresh host's first run"]),
                        (f"`gpu` + {LIGER}", f"{RESULTS}/tuning/h100-gpu-liger.json")):
        r = bench_row(path)
        rows.append([label, r["train_examples_per_s"], r["median_step_seconds"], f"{r['peak_gpu_memory_gib']:.2f}",
                     f"{r['stage_seconds']['train']:.1f}", acc(r, "official_test"), f"`{path.removeprefix(RESULTS + '/')}`"])
    return md(["run", "train ex/s", "median step s", "peak GiB", "train stage s", "official test acc", "file"], rows)


@shown
def llama8b_levers() -> str:
    """The 8B shape's settings on one NVIDIA H100, one after another: speed, model FLOPs utilization, memory."""
    rows = []
    for path in (f"{RESULTS}/llama8b/h100-levers.json", f"{RESULTS}/llama8b/h100-levers-2.json",
                 f"{RESULTS}/llama8b/h100-levers-3.json"):
        for r in load(path)["results"]:
            label = setting(r).replace("`-S train.liger_kernel=true`", f"+ {LIGER} (removed)")
            rows.append([label, r["train_examples_per_s"], f"{r['train_tokens_per_s']:,.0f}", f"{100 * r['mfu']:.1f}%",
                         f"{r['train_peak_gpu_memory_gib']} GiB", r["inference_examples_per_s"],
                         f"{r['inference_peak_gpu_memory_gib']} GiB", f"`{path.removeprefix(RESULTS + '/')}`"])
    return md(["setting", "train ex/s", "train tok/s", "MFU", "peak GPU memory, training", "inference ex/s",
               "peak GPU memory, inference", "file"], rows)


# ---------------------------------------------------------------- docs/accuracy.md

def model_name(folder: str) -> str:
    return MODELS[load(f"{folder}/params.yaml")["model"]["name"]]


@shown
def accuracy_models() -> str:
    rows = []
    for folder, card in [(f"{ACC}/smol-4011-r64-final", None), (f"{ACC}/seeds-minilm-gpu/minilm-4011", None),
                         (f"{ACC}/minilm-4011-final", "2-core x86 CPU")]:
        ev = load(f"{folder}/eval.json")
        card = card or load(f"{folder}/manifest.json")["device"].removesuffix(" 80GB HBM3")
        rows.append([f"`{folder.removeprefix(ACC + '/')}/`", model_name(folder), acc(ev, "val"),
                     acc(ev, "official_test"), ev["official_test"]["ece"], card])
    return md(["run", "model", "val accuracy", "official test accuracy", "official test ECE", "trained on"], rows)


def seed_runs(folder: str) -> dict[str, dict]:
    """A sweep's SmolLM2 seed runs: name -> its eval.json."""
    return {p.name: load(f"{folder}/{p.name}/eval.json")
            for p in sorted((ROOT / folder).glob("accurate-seed*")) if (p / "eval.json").exists()}


@shown
def accuracy_seeds() -> str:
    cpu = [r for r in load(f"{ACC}/cpu-seeds-ema.json")["runs"]
           if r["train.ema_decay"] == r["train.rdrop_alpha"] == 0]  # the seeds, no other lever
    rows = [["`params.yaml`, 2-core x86 CPU", len(cpu), spread([r["val_accuracy"] for r in cpu]),
             spread([r["test_accuracy"] for r in cpu]) + " test", "`accuracy/cpu-seeds-ema.json`"]]
    for folder in ("levers-gpu", "seeds-gpu", "seeds-minilm-gpu"):
        runs = seed_runs(f"{ACC}/{folder}")
        device = {load(f"{ACC}/{folder}/{n}/manifest.json")["device"] for n in runs}
        official = [ev["official_test"]["accuracy"] for ev in runs.values() if "official_test" in ev]
        rows.append([f"`accurate`, {device.pop()}", len(runs),
                     spread([ev["val"]["accuracy"] for ev in runs.values()]),
                     spread(official) + " official test" if official else "", f"`accuracy/{folder}/`"])
    return md(["setting, card", "seeds", "val accuracy", "held-out accuracy", "files"], rows)


def experiments() -> dict[str, dict[str, str]]:
    """bench/results/accuracy/experiments.md (`dvc exp show --md`): run name -> its cells by column."""
    lines = [line for line in (ROOT / ACC / "experiments.md").read_text().splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    header = [h.split(":")[-1] for h in cells[0]]
    return {c[0].split("[")[1].rstrip("]"): dict(zip(header, c)) for c in cells[1:] if "[" in c[0]}


# what each change gave, from one run of experiments.md to another
LEVERS = [("training rows a class: 2,000 → 3,271", "smol-2000", "smol-3271"),
          ("LoRA on all linear layers, r 16 α 32, 2 epochs, cosine", "smol-3271", "smol-all-linear"),
          ("LoRA r 16 → 64, α 128, lr 3e-4, at 4,011 rows", "smol-best-4011", "smol-4011-r64-final"),
          ("lr 5e-4 → 8e-4, at 4,011 rows", "smol-best-4011", "smol-4011-lr8e-4"),
          ("a third epoch, at 4,011 rows", "smol-best-4011", "smol-4011-3ep"),
          ("label smoothing 0.1", "smol-all-linear", "smol-all-linear-ls"),
          ("batch 16, lr 2e-4", "smol-all-linear", "smol-all-linear-bs16"),
          ("LoRA r 32", "smol-all-linear", "smol-all-linear-r32"),
          ("unquantized base (`quant.mode: none`)", "smol-all-linear", "smol-all-linear-bf16"),
          ("Gemma 3 270M in place of SmolLM2", "smol-all-linear", "gemma-all-linear")]


@shown
def accuracy_levers() -> str:
    runs = experiments()
    rows = []
    change = lambda a, b, key: (f"{f4(float(runs[a][key]))} → {f4(float(runs[b][key]))}"  # noqa: E731
                                if "-" not in (runs[a][key], runs[b][key]) else "")  # "-": not scored
    for lever, a, b in LEVERS:
        rows.append([lever, f"`{a}` → `{b}`", change(a, b, "val.accuracy"), change(a, b, "official_test.accuracy")])
    return md(["change", "runs", "val accuracy", "official test accuracy"], rows)


def ensemble_rows(folder: str, names: list[str]) -> list[list]:
    seeds = seed_runs(f"{ACC}/{folder}")
    rows = []
    for ensemble in names:
        ev = load(f"{ACC}/{folder}/{ensemble}/eval.json")
        # the ensemble's own model: the seed run whose scores its evaluate stage repeats
        own = [n for n, s in seeds.items() if (s["val"], s["official_test"]) == (ev["val"], ev["official_test"])]
        ens = ev["ensemble"]
        rows.append([f"`{folder}/{ensemble}/`", ", ".join([*own, *ens["members"]]), f"{ens['parameters']:,}",
                     acc(ens, "val"), acc(ens, "official_test"), ens["official_test"]["ece"]])
    return rows


@shown
def accuracy_ensembles() -> str:
    rows = ensemble_rows("seeds-minilm-gpu", ["ensemble-seed42-minilm", "ensemble-2-seeds-minilm",
                                              "ensemble-3-seeds-minilm", "ensemble-3-seeds"])
    return md(["ensemble", "models", "parameters", "val accuracy", "official test accuracy", "official test ECE"],
              rows)


MPNET = f"{ACC}/mpnet-gpu"


@shown
def accuracy_mpnet() -> str:
    """The MPNet search and its ensembles, one sweep: chosen by val accuracy alone, the chosen row in bold."""
    rows = []
    for run in ("mpnet-4011", "mpnet-lr1e-4", "mpnet-lr2e-4", "mpnet-3ep", "mpnet-3ep-seed1", "minilm-4011"):
        ev, prm = load(f"{MPNET}/{run}/eval.json"), load(f"{MPNET}/{run}/params.yaml")["train"]
        rows.append([f"`{run}`", model_name(f"{MPNET}/{run}"), f"lr {prm['lr']}, {prm['epochs']:g} epochs, seed {prm['seed']}",
                     "1", acc(ev, "val"), acc(ev, "official_test"), ev["official_test"]["ece"]])
    for folder in sorted(p.name for p in (ROOT / MPNET).glob("ensemble-*")):
        ens = load(f"{MPNET}/{folder}/eval.json")["ensemble"]
        rows.append([f"`{folder}`", "ensemble", f"{ens['parameters']:,} parameters", ens["models"],
                     acc(ens, "val"), acc(ens, "official_test"), ens["official_test"]["ece"]])
    # the second seed measures the spread of the choice, after it: not a candidate
    best = max((i for i, row in enumerate(rows) if row[0] != "`mpnet-3ep-seed1`"), key=lambda i: rows[i][4])
    rows[best] = [f"**{c}**" for c in rows[best]]
    return md(["run", "model", "settings", "models", "val accuracy", "official test accuracy", "official test ECE"],
              rows)


@shown
def distill() -> str:
    """Distillation against its teachers: on `accurate` (official test) and on params.yaml (test)."""
    gpu, cpu = f"{ACC}/seeds-minilm-gpu", f"{ACC}/distill-cpu"
    teachers = load(f"{gpu}/ensemble-3-seeds-minilm/eval.json")["ensemble"]
    accurate = [("`accurate-seed42`, labels alone", 1, load(f"{gpu}/accurate-seed42/eval.json")),
                ("its teachers, an ensemble: 3 seeds + MiniLM", teachers["models"], teachers),
                ("SmolLM2 distilled from them", 1, load(f"{gpu}/distill/eval.json"))]
    rows = [["`accurate`, NVIDIA H200", m, n, acc(s, "val"), acc(s, "official_test") + " official test",
             s["official_test"]["ece"]] for m, n, s in accurate]
    ens = load(f"{cpu}/ensemble/eval.json")["ensemble"]
    for label, run in [("SmolLM2, labels alone", "plain"), ("MiniLM-L6, labels alone", "minilm"),
                       ("both, an ensemble", "ensemble"), ("SmolLM2 distilled from both", "distilled")]:
        ev = ens if run == "ensemble" else load(f"{cpu}/{run}/eval.json")
        val = "" if run == "ensemble" else f4(load(f"{cpu}/{run}/train.json")["val_accuracy"])
        rows.append(["`params.yaml`, 2-core x86 CPU", label, ev.get("models", 1), val, acc(ev, "test") + " test",
                     ev["test"]["ece"]])
    return md(["setting, card", "model", "models at prediction", "val accuracy", "held-out accuracy", "held-out ECE"],
              rows)


def slower(a: float, b: float) -> str:
    return f"{a} → {b} ({b / a:.2f}×)"


@shown
def accuracy_no_gain() -> str:
    cpu = load(f"{ACC}/cpu-seeds-ema.json")
    runs, seconds = {r["experiment"]: r for r in cpu["runs"]}, cpu["train_seconds"]
    main = "main (committed reference run)"
    setting = "`params.yaml`, 2-core x86 CPU"
    rows = []
    for lever, exp in [("R-Drop, alpha 1.0", "cpu-rdrop1"), ("EMA of the weights, decay 0.99", "cpu-ema99")]:
        a, b = runs[main], runs[exp]
        rows.append([lever, setting, f"{f4(a['val_accuracy'])} → {f4(b['val_accuracy'])}",
                     f"{f4(a['test_accuracy'])} → {f4(b['test_accuracy'])} test",
                     slower(seconds[main], seconds[exp]) if exp in seconds else "", "`accuracy/cpu-seeds-ema.json`"])
    folder = f"{ACC}/levers-gpu"
    a, b = (load(f"{folder}/{n}/eval.json")["val"]["accuracy"] for n in ("accurate-seed42", "accurate-ema999"))
    ta, tb = (load(f"{folder}/{n}/train-log.json")["train_seconds"] for n in ("accurate-seed42", "accurate-ema999"))
    device = load(f"{folder}/accurate-ema999/manifest.json")["device"]
    rows.append(["EMA of the weights, decay 0.999", f"`accurate`, {device}", f"{f4(a)} → {f4(b)}", "", slower(ta, tb),
                 "`accuracy/levers-gpu/`"])
    return md(["lever", "setting, card", "val accuracy", "held-out accuracy", "train s", "files"], rows)


# ---------------------------------------------------------------- docs/pipeline.md

@shown
def figures() -> str:
    ev, base = load("docs/gpu/eval.json"), load("docs/gpu/baseline.json")
    off = ev["official_test"]
    rows = [["untrained head", base["untrained_head"]["official_test"]["accuracy"], "", ""],
            ["TF-IDF + logistic regression", base["tfidf_logreg"]["official_test"]["accuracy"], "", ""],
            ["fine-tuned", f"**{off['accuracy']}**", off["ece"],
             f"{off['ece_calibrated']} (T = {ev['calibration']['temperature']}, fitted on val)"]]
    return md(["model", "accuracy", "ECE", "ECE after temperature scaling"], rows)


# ---------------------------------------------------------------- docs/scale-out.md

@shown
def multigpu_fixed() -> str:
    """1 process from the JSON; 2 from the log (the script stopped before writing them: the log's end)."""
    one = load(f"{RESULTS}/multigpu-h200x2.json")["runs"][0]
    log = (ROOT / RESULTS / "multigpu-h200x2.log").read_text()
    two = yaml.safe_load(re.findall(r"(?m)^train: (\{.*\})$", log)[-1])  # a printed dict of numbers: YAML
    last = lambda split: re.findall(rf"(?m)^{split}: accuracy ([\d.]+)", log)[-1]  # noqa: E731
    rows = [[1, one["train_examples_per_s"], "1.0", acc(one, "test"), acc(one, "official_test"),
             f"{one['peak_gpu_memory_gib']:.1f} GiB"],
            [2, two["train_examples_per_s"], f"**{two['train_examples_per_s'] / one['train_examples_per_s']:.2f}**",
             last("test"), last("official_test"), f"{two['peak_gpu_memory_gib']:.1f} GiB"]]
    return md(["processes", "train ex/s", "scaling", "test accuracy", "official test accuracy",
               "peak GPU memory (rank 0)"], rows)


@shown
def multigpu_weak() -> str:
    runs = load(f"{RESULTS}/scale-out/multigpu-weak.json")["runs"]
    rows = [[r["processes"], r["train_examples_per_s"],
             f"**{r['train_examples_per_s'] / runs[0]['train_examples_per_s']:.2f}**" if r is not runs[0] else "1.0",
             r["effective_batch"], round(r["effective_lr"], 5), r["train_steps"], acc(r, "test"),
             acc(r, "official_test"), f"{r['peak_gpu_memory_gib']:.1f} GiB"] for r in runs]
    return md(["processes (weak)", "train ex/s", "scaling", "effective batch", "lr", "steps", "test accuracy",
               "official test accuracy", "peak GPU memory (rank 0)"], rows)


def llama8b_ddp(name: str) -> str:
    run = load(f"{RESULTS}/llama8b/h200x2-llama3-8b-{name}.json")
    first = run["runs"][0]["train_examples_per_s"]
    rows = [[r["processes"], r["train_examples_per_s"],
             f"**{r['train_examples_per_s'] / first:.2f}**" if r["processes"] > 1 else "1.0",
             r["effective_batch"] // r["processes"],
             " / ".join(str(k["train_peak_gpu_memory_gib"]) for k in r["ranks"]) + " GiB",
             f"{r['load_and_quantize_seconds']} s"] for r in run["runs"]]
    return md(["processes", "train ex/s", "scaling", "rows per GPU a step", "peak GPU memory per GPU",
               "load + quantize"], rows)


TABLES["llama8b-ddp-checkpointing"] = lambda: llama8b_ddp("ddp-checkpointing")
TABLES["llama8b-ddp-weak"] = lambda: llama8b_ddp("ddp-weak")
TABLES["llama8b-ddp-offload"] = lambda: llama8b_ddp("ddp")


@shown
def parallel() -> str:
    run = load(f"{RESULTS}/scale-out/parallel.json")
    rows = []
    for phase, label in [("first", "first (fills the run cache)"), ("alone", "alone"), ("together", "together")]:
        p = run[phase]
        runs = list(p["runs"].values())
        rows.append([label, ", ".join(p["experiments"]), "; ".join(",".join(r["gpus_claimed"]) for r in runs),
                     "; ".join(dict.fromkeys(", ".join(r["stages_run"]) for r in runs)), p["wall_seconds"],
                     p["experiments_per_hour"], *(", ".join(str(r["accuracy"][s]) for r in runs)
                                                  for s in ("val", "official_test"))])
    return md(["phase", "experiments", "GPUs its stages claimed", "stages run", "wall s", "experiments per hour",
               "val acc", "official test acc"], rows)


# ---------------------------------------------------------------- bench/results/README.md

def run_label(result: dict, r: dict) -> str:
    if r["recipe"] == "tutorial":
        return "tutorial as written"
    env = [f"{k}={v}" for k, v in result.get("env", {}).items() if k.startswith("PYTORCH_")]
    return " ".join(["+".join(r["presets"]), *r["overrides"], *env])


@shown
def benchmark_runs() -> str:
    """Every bench/benchmark.py result under bench/results: one row a run."""
    rows = []
    for path in sorted((ROOT / RESULTS).rglob("*.json")):
        result = load(str(path.relative_to(ROOT)))
        runs = result.get("results") if isinstance(result, dict) else None
        if not runs or "recipe" not in runs[0]:  # another script's JSON
            continue
        for r in runs:
            rows.append([f"`{path.relative_to(ROOT / RESULTS)}`", result["device"].removesuffix(" 80GB HBM3"),
                         run_label(result, r), r["train_examples_per_s"], r.get("median_step_seconds", ""),
                         r["peak_gpu_memory_gib"], f"{r['inference_examples_per_s']:,.0f}",
                         f4(r["val_accuracy"]) if "val_accuracy" in r else "", acc(r, "test"), acc(r, "official_test")])
    return md(["file", "card", "run", "train ex/s", "median step s", "peak GiB", "infer ex/s", "val", "test",
               "official test"], rows)


@shown
def accuracy_runs() -> str:
    """Every scored run under bench/results/accuracy (an eval.json): one row each, an ensemble's scores where it
    has members."""
    rows = []
    for path in sorted((ROOT / ACC).rglob("eval.json")):
        ev = load(str(path.relative_to(ROOT)))
        folder = path.parent.relative_to(ROOT / ACC)
        scores = ev.get("ensemble", ev)
        model = f"ensemble of {scores['models']}" if "ensemble" in ev else (
            model_name(str(path.parent.relative_to(ROOT))) if (path.parent / "params.yaml").exists() else "")
        split = next(s for s in ("official_test", "test", "val") if s in scores)
        rows.append([f"`{folder}/`", model, acc(scores, "val"),
                     acc(scores, "test"), acc(scores, "official_test"), scores[split].get("ece", "")])
    return md(["folder", "model", "val", "test", "official test", "ECE (official test, else test, else val)"], rows)


# ---------------------------------------------------------------- the blocks

def render(text: str, where: str = "") -> str:
    def fill(m: re.Match) -> str:
        if m[2] not in TABLES:
            raise SystemExit(f"{where}: no table named {m[2]!r} in bench/tables.py")
        return m[1] + TABLES[m[2]]() + m[4]
    return BLOCK.sub(fill, text)


def blocks() -> dict[str, list[str]]:
    """Each file of FILES -> the names of the tables it shows."""
    return {f: [m[1] for m in BLOCK.findall((ROOT / f).read_text(encoding="utf-8"))] for f in FILES}


def stale() -> list[str]:
    """The files whose tables differ from the result files', each with the names of those tables."""
    out = []
    for f in FILES:
        text = (ROOT / f).read_text(encoding="utf-8")
        new = render(text, f)
        if new != text:
            old, fresh = ({m[1]: m[2] for m in BLOCK.findall(t)} for t in (text, new))
            out.append(f"{f}: {', '.join(n for n in old if old[n] != fresh[n])}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs")
    ap.add_argument("--show", metavar="NAME", choices=sorted(TABLES), help="print one table, change nothing")
    args = ap.parse_args()
    if args.show:
        print(TABLES[args.show](), end="")
        return
    if args.check:
        if out := stale():
            raise SystemExit("tables differ from the result files (`python bench/tables.py` rewrites them):\n"
                             + "\n".join(out))
        return
    for f in FILES:
        text = (ROOT / f).read_text(encoding="utf-8")
        if (new := render(text, f)) != text:
            (ROOT / f).write_text(new, encoding="utf-8")
            print(f"rewrote {f}")


if __name__ == "__main__":
    main()
