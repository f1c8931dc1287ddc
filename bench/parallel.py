"""Experiments side by side, one GPU each, against one after another: experiments per hour on a host
with several GPUs. Each stage claims a GPU no other run holds (llmclf/gpus.py), as it does under
`dvc queue start -j N`; this benchmark runs them through offline/sweep.py, DVC's stage order without DVC.

    python bench/parallel.py --plan offline/plans/parallel.yaml --work /tmp/parallel --out parallel.json

The plan's first experiment runs alone; the next N (N: the GPUs visible, or --together) then run at
once. Experiments per hour of each phase, and their ratio (target: >= 1.8 on 2 GPUs), come from the
phases' wall-clock times; the experiments should be of one size (same rows and epochs).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "offline"))
import sweep  # noqa: E402  (offline/sweep.py: one experiment's stages in its own folder)

TARGET = 1.8


def phase(work: Path, names: list[str], plan: dict, device: str) -> dict:
    """Run `names` at once; wall seconds, and each run's GPU (from its log), metrics and stage times."""
    start = time.perf_counter()
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda n: sweep.experiment(work, n, plan, [], None, device), names))
    seconds = round(time.perf_counter() - start, 1)
    runs = {}
    for r in results:
        if r["failed"]:
            raise SystemExit(sweep.summary_line(work, r))
        log = (work / r["name"] / "run.log").read_text(errors="replace")
        ev = json.loads((work / r["name"] / "metrics/eval.json").read_text())
        runs[r["name"]] = {"gpus_claimed": sorted(set(re.findall(r"gpus: GPU ([\d,]+) of", log))),
                           "stage_seconds": r["stage_seconds"], "overrides": r["overrides"],
                           "accuracy": {s: v["accuracy"] for s, v in ev.items() if isinstance(v, dict) and "accuracy" in v}}
    return {"experiments": names, "wall_seconds": seconds,
            "experiments_per_hour": round(3600 * len(names) / seconds, 1), "runs": runs}


def speedup(alone: dict, together: dict) -> float:
    return round(together["experiments_per_hour"] / alone["experiments_per_hour"], 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="one folder per experiment")
    ap.add_argument("--together", type=int, help="experiments at once (default: the GPUs visible)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    n = args.together or len(gpus)
    plan = sweep.load_plan(args.plan)
    names = list(plan["experiments"])
    if n < 2 or len(names) < 1 + n:
        raise SystemExit(f"error: {args.plan} needs 1 + {n} experiments, and at least 2 at once ({len(gpus)} GPUs)")
    args.work.mkdir(parents=True, exist_ok=True)
    device = gpus[0] if gpus else "CPU"
    result = {"gpus": gpus, "plan": str(args.plan), "presets": plan.get("presets", []), "target": TARGET}
    result["alone"] = phase(args.work, names[:1], plan, device)
    result["together"] = phase(args.work, names[1:1 + n], plan, device)
    result["speedup"] = speedup(result["alone"], result["together"])
    result["meets_target"] = result["speedup"] >= TARGET
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("gpus", "speedup", "meets_target")} |
                     {p: {k: result[p][k] for k in ("wall_seconds", "experiments_per_hour")} for p in ("alone", "together")}))
    for p in ("alone", "together"):
        for name, r in result[p]["runs"].items():
            print(f"{p}: {name}: GPU {r['gpus_claimed']}, {r['accuracy']}, stages {r['stage_seconds']}")


if __name__ == "__main__":
    main()
