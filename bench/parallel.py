"""Experiments side by side through DVC's own queue, one GPU each, against one after another: experiments
per hour on a host with several GPUs. DVC's queue does not assign GPUs; each stage claims one that no other
run holds (llmclf/core/gpus.py). Run in the project's git checkout, with `dvc` installed:

    python bench/parallel.py --plan offline/plans/parallel.yaml --out parallel.json
    bash offline/run.sh py bench/parallel.py --plan offline/plans/parallel.yaml --out parallel.json  # no network

The plan's first experiment runs first, alone: it fills DVC's run cache with the data stages every
experiment shares (fetch, sample, split), as a user's first experiment does; its time is reported, not
compared. The second is then queued and run alone (`dvc queue start -j 1`), and the next N (N: the GPUs
visible, or --together) queued and run at once (`dvc queue start -j N`). Experiments per hour of these
two phases, and their ratio (target: >= 1.8 on 2 GPUs), come from the phases' wall-clock times, from
the workers' start to the last experiment's end; the experiments after the first should change the same
stages' params (e.g. train.* only: each reruns baseline, whose metrics DVC's run cache does not keep,
train and evaluate; fetch too where the host's pyarrow or pandas is not the version that recorded
dvc.lock, docs/scale-out.md). Each run's stages run are in the JSON. The experiments stay in the checkout as DVC
experiments (`dvc exp show`, `dvc exp push`).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "offline"))
from llmclf.cli import presets  # noqa: E402
from sweep import load_plan  # noqa: E402  (offline/sweep.py: the plan files' reader)

TARGET = 1.8
DVC = [sys.executable, "-m", "dvc"]


def dvc(*args: str) -> str:
    done = subprocess.run([*DVC, *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: dvc {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def overrides(plan: dict, name: str) -> list[str]:
    """The experiment's -S overrides: its presets' values, the plan's `set`, then its own."""
    return presets.exp_overrides(plan.get("presets", []), [*plan.get("set", []), *plan["experiments"][name]])


def statuses() -> dict[str, str]:
    """Each experiment's state in `dvc queue status`: Queued, Running, Success or Failed."""
    rows = (line.split() for line in dvc("queue", "status").splitlines())
    return {row[1]: row[-1] for row in rows if len(row) >= 3 and row[-1] in ("Queued", "Running", "Success", "Failed")}


def phase(names: list[str], plan: dict, poll: float) -> dict:
    """Queue `names`, run them with as many workers, wait for the last; wall seconds, and each run's GPU
    and stages run (from its log) and metrics."""
    for name in names:
        dvc("exp", "run", "--queue", "-n", name, *[a for item in overrides(plan, name) for a in ("-S", item)])
    start = time.perf_counter()
    # the workers outlive this call; their output goes to each experiment's log (dvc queue logs)
    subprocess.run([*DVC, "queue", "start", "-j", str(len(names))], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while any(statuses().get(n) in (None, "Queued", "Running") for n in names):
        time.sleep(poll)
    seconds = round(time.perf_counter() - start, 1)
    dvc("queue", "stop")  # idle workers go: the next phase starts its own number
    state = statuses()
    failed = [n for n in names if state[n] != "Success"]
    if failed:
        raise SystemExit(f"error: {failed} failed; `dvc queue logs NAME` shows why")
    shown = {e["name"]: e["data"] for row in json.loads(dvc("exp", "show", "--json"))
             for ex in row.get("experiments") or [] for e in ex["revs"] if e.get("name") in names}
    runs = {}
    for name in names:
        evaluated = shown[name]["metrics"]["metrics/eval.json"]["data"]
        log = dvc("queue", "logs", name)
        runs[name] = {"gpus_claimed": sorted(set(re.findall(r"gpus: GPU ([\d,]+) of", log))),
                      "stages_run": re.findall(r"Running stage '(\w+)'", log),  # the others: from DVC's cache
                      "overrides": plan.get("set", []) + plan["experiments"][name],
                      "accuracy": {s: v["accuracy"] for s, v in evaluated.items() if isinstance(v, dict) and "accuracy" in v}}
    return {"experiments": names, "wall_seconds": seconds,
            "experiments_per_hour": round(3600 * len(names) / seconds, 1), "runs": runs}


def speedup(alone: dict, together: dict) -> float:
    return round(together["experiments_per_hour"] / alone["experiments_per_hour"], 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", type=Path, required=True)
    ap.add_argument("--together", type=int, help="experiments at once (default: the GPUs visible)")
    ap.add_argument("--poll", type=float, default=2.0, help="seconds between looks at `dvc queue status`")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    n = args.together or len(gpus)
    plan = load_plan(args.plan)
    names = list(plan["experiments"])
    if n < 2 or len(names) < 2 + n:
        raise SystemExit(f"error: {args.plan} needs 2 + {n} experiments, and at least 2 at once ({len(gpus)} GPUs)")
    result = {"gpus": gpus, "plan": str(args.plan), "presets": plan.get("presets", []), "target": TARGET}
    result["first"] = phase(names[:1], plan, args.poll)
    result["alone"] = phase(names[1:2], plan, args.poll)
    result["together"] = phase(names[2:2 + n], plan, args.poll)
    result["speedup"] = speedup(result["alone"], result["together"])
    result["meets_target"] = result["speedup"] >= TARGET
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("gpus", "speedup", "meets_target")} |
                     {p: {k: result[p][k] for k in ("wall_seconds", "experiments_per_hour")} for p in ("alone", "together")}))
    for p in ("first", "alone", "together"):
        for name, r in result[p]["runs"].items():
            print(f"{p}: {name}: GPU {r['gpus_claimed']}, {r['accuracy']}")


if __name__ == "__main__":
    main()
