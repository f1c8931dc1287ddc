"""Multi-GPU scaling, in one invocation on one machine: the train stage on one process (one GPU), then on
N processes (N GPUs, DDP through `accelerate launch`), each evaluated; same splits and params, as
`dvc exp run -S train.num_processes=N` would. --batch-scaling fixed (the default): the same effective batch
(train.batch_size, split over the processes); weak: train.batch_size rows on each process, the effective
batch and the learning rate grown with the process count (docs/scale-out.md).

    python bench/multigpu.py --out bench/results/multigpu.json                 # 1 vs 2 GPUs, presets/gpu.yaml
    python bench/multigpu.py --batch-scaling weak --out bench/results/multigpu-weak.json
    python bench/multigpu.py --processes 1 4 --set train.batch_size=64 train.lr=4e-4 --out ...

Speed is training examples/s (trainer.train()'s wall time, as bench/benchmark.py); each run is compared
with the first: scaling of that speed, accuracy change in points, and whether the optimizer took the
same number of steps (fixed: the same effective batch; weak: fewer, larger steps).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import benchmark  # bench/benchmark.py: params with presets, the stage runs and their metrics
from llmclf.cli import presets  # noqa: E402 (importable once benchmark has put the repo on the path)
from llmclf.core import params  # noqa: E402

TARGETS = {"scaling": 1.8, "accuracy_points": 0.5}  # >= 1.8x examples/s, accuracy within 0.5 point


def compare(runs: list[dict]) -> list[dict]:
    """Every run after the first against the first."""
    first = runs[0]
    out = []
    for run in runs[1:]:
        scaling = round(run["train_examples_per_s"] / first["train_examples_per_s"], 2)
        points = {s: round(100 * (run[s]["accuracy"] - first[s]["accuracy"]), 2)
                  for s in benchmark.EVAL_SPLITS if s in run and s in first}
        out.append({"processes": run["processes"], "against_processes": first["processes"], "scaling": scaling,
                    "accuracy_change_points": points, "same_steps": run["train_steps"] == first["train_steps"],
                    "meets_targets": scaling >= TARGETS["scaling"]
                    and all(abs(v) <= TARGETS["accuracy_points"] for v in points.values())})
    return out


def table(runs: list[dict]) -> str:
    cols = ["processes", "train ex/s", "scaling", "train s", "steps", "test acc", "official acc",
            "peak GiB (rank 0)", "train stage s", "wall s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    scaling = {c["processes"]: c["scaling"] for c in compare(runs)}
    for r in runs:
        lines.append("| " + " | ".join(str(x) for x in [
            r["processes"], r["train_examples_per_s"], scaling.get(r["processes"], 1.0), r["train_seconds"],
            r["train_steps"], r.get("test", {}).get("accuracy", ""), r.get("official_test", {}).get("accuracy", ""),
            r["peak_gpu_memory_gib"], r["stage_seconds"]["train"], r["wall_seconds"]]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", nargs="+", type=int, default=[1, 2], help="process counts, first the reference")
    ap.add_argument("--preset", nargs="*", default=["gpu"])
    ap.add_argument("--batch-scaling", choices=["fixed", "weak"], default="fixed", help="train.batch_scaling")
    ap.add_argument("--set", nargs="*", default=[], dest="overrides", help="key=value params overrides")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = ap.parse_args()
    args.overrides.append(f"train.batch_scaling={args.batch_scaling}")
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if min(args.processes) < 1 or gpus and max(args.processes) > len(gpus):  # no GPU: CPU processes (a dry run)
        sys.exit(f"error: --processes {args.processes}: {len(gpus)} GPU(s) visible")
    p = params.parse(presets.compose(args.preset, args.overrides))
    summary = json.loads(Path(benchmark.SPLITS, "summary.json").read_text())
    result = {"gpus": gpus, "torch": torch.__version__, "transformers": __import__("transformers").__version__,
              "model": p.model.name, "splits": {s: v["rows"] for s, v in summary["splits"].items()},
              "presets": args.preset, "overrides": args.overrides, "targets": TARGETS, "runs": [], "comparisons": []}
    for i, n in enumerate(args.processes):
        stages = ("baseline", "train", "evaluate") if i == 0 else ("train", "evaluate")  # one baseline serves all
        result["runs"].append(benchmark.run_project(args.preset, [*args.overrides, f"train.num_processes={n}"], stages))
        result["comparisons"] = compare(result["runs"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # after each run: a timeout keeps the earlier
    print(f"\n{', '.join(gpus) or 'no GPU'}, {p.model.name}, splits {result['splits']}\n{table(result['runs'])}")
    print(json.dumps(result["comparisons"], indent=2))


if __name__ == "__main__":
    main()
