"""Run several experiments of the pipeline side by side on one GPU host that has no DVC, and pack
each one's outputs so that `offline/import_runs.py` records it as a DVC experiment in a checkout with DVC.

    python offline/sweep.py --plan offline/plans/accuracy.yaml --work /tmp/sweep --jobs 8
    python offline/sweep.py --plan offline/plans/accuracy.yaml --work /tmp/sweep --only NAME \\
        --set 'evaluate.splits=[val, test, official_test]' --suffix=-final

Each experiment runs the six stage scripts in order, as `dvc repro` would, in its own copy of the
project (WORK/NAME/) whose params.yaml is this one + the plan's presets + the plan's and --set
overrides (`dvc exp run -S` syntax). `--suffix` reuses WORK/NAME's data and adapter and reruns
only what the new overrides change (baseline and evaluate for `evaluate.*` and `inference.*`). At these
model sizes one training process leaves the GPU mostly idle (it is host-bound), so experiments run concurrently.
Before any run starts, every offline alias the experiments train must be in LLMCLF_CACHE (offline/prepare.sh's
`MODELS`): the host has no network to fetch one.
Packs go to WORK/out/NAME.tgz; `--part-size MiB` cuts larger ones into parts (.tgz.00, .01, ...) for a
transfer back with a size limit per file.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from llmclf.cli import presets  # noqa: E402
from llmclf.core import params, runlog  # noqa: E402
from llmclf.model import basemodel  # noqa: E402

STAGES = ("fetch", "sample", "split", "baseline", "train", "evaluate")
PROJECT = ("llmclf", "stages", "presets", "dvc.yaml", "params.yaml", "data/ag_news")  # what a stage run needs


def code_hashes(folder: Path) -> dict[str, str]:
    """sha256 of the files DVC hashes as code deps, so the import can prove the run used this code."""
    files = [folder / "dvc.yaml", *sorted((folder / "stages").glob("*.py")), *sorted((folder / "llmclf").rglob("*.py"))]
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def split_hashes(folder: Path) -> dict[str, str]:
    """sha256 of each split's rows (column names, then one JSON line a row): unlike the Parquet bytes,
    these do not depend on the pandas and pyarrow versions that wrote the file."""
    import pandas as pd

    out = {}
    for f in sorted((folder / "data/splits").glob("*.parquet")):
        df = pd.read_parquet(f)
        h = hashlib.sha256(json.dumps(list(df.columns)).encode())
        for row in df.itertuples(index=False):
            h.update(json.dumps([v.item() if hasattr(v, "item") else v for v in row], ensure_ascii=False).encode() + b"\n")
        out[f.name] = h.hexdigest()
    return out


def load_plan(path: Path) -> dict:
    plan = params.read_yaml(path)
    for name, items in plan["experiments"].items():
        if not isinstance(items, list):
            raise SystemExit(f"error: {path}: experiment {name!r} needs a list of key=value overrides")
    return plan


def overrides(plan: dict, name: str, extra: list[str]) -> list[str]:
    """Experiment `name`'s overrides: the plan's for all runs, then its own, then --set's."""
    return [*plan.get("set", []), *plan["experiments"][name], *extra]


def check_models(plan: dict, names: list[str], extra: list[str]) -> None:
    """Stop unless every offline alias the experiments train is in LLMCLF_CACHE: without network, a missing
    one would fail its run only in the baseline stage, after the data stages. Hub ids and folders pass."""
    model_of = {n: presets.compose(plan.get("presets", []), overrides(plan, n, extra), root=ROOT)["model"]["name"]
                for n in names}
    models = {n: m for n, m in model_of.items() if m in basemodel.OFFLINE_MODELS}
    if missing := {n: m for n, m in models.items() if not basemodel.cached(m)}:
        runs = ", ".join(f"{n} ({m})" for n, m in missing.items())
        raise SystemExit(f"error: base models not in {basemodel.cache_dir()}: {runs}; on the machine with network "
                         f"run MODELS=\"{' '.join(dict.fromkeys(models.values()))}\" bash offline/prepare.sh, "
                         "then send the pieces again")


def prepare(work: Path, name: str, plan: dict, extra: list[str], base: str | None) -> Path:
    folder = work / name
    if folder.exists():
        shutil.rmtree(folder)
    if base:  # a re-evaluation: start from the first run's outputs
        shutil.copytree(work / base, folder, symlinks=True, ignore=shutil.ignore_patterns("run.log", "manifest.json"))
    else:
        folder.mkdir(parents=True)
        for item in PROJECT:
            src = ROOT / item
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, folder / item)
    # PyYAML: a GPU host may lack ruamel for presets.apply
    raw = presets.compose(plan.get("presets", []), overrides(plan, base or name, extra), root=folder)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return folder


def run(folder: Path, stages: tuple[str, ...]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    seconds, failed = {}, None
    with open(folder / "run.log", "a", encoding="utf-8") as log:
        for stage in stages:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, f"stages/{stage}.py"], cwd=folder, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
            seconds[stage] = round(time.perf_counter() - start, 1)
            if done.returncode:
                failed = stage
                break
    return {"stage_seconds": seconds, "failed": failed}


def pack(folder: Path, out: Path, adapter: bool, part: int = 0) -> list[Path]:
    """WORK/out/NAME.tgz, or parts of at most `part` bytes when it is larger (0: one file)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{folder.name}.tgz*"):
        old.unlink()
    archive = out / f"{folder.name}.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in ("params.yaml", "manifest.json", "run.log", "metrics", "logs", "models/calibration.json",
                     *(["models/adapter"] if adapter else [])):
            if (folder / item).exists():
                tar.add(folder / item, arcname=item)
    if not part or archive.stat().st_size <= part:
        return [archive]
    parts, data = [], archive.read_bytes()
    for i in range(0, len(data), part):
        piece = out / f"{archive.name}.{i // part:02d}"
        piece.write_bytes(data[i:i + part])
        parts.append(piece)
    archive.unlink()
    return parts


def experiment(work: Path, name: str, plan: dict, extra: list[str], base: str | None, gpu: str,
               part: int = 0) -> dict:
    folder = prepare(work, name, plan, extra, base)
    # evaluate.* and inference.* params reach the baseline and evaluate stages only (dvc.yaml)
    stages = (("baseline", "evaluate") if base and all(o.startswith(("evaluate.", "inference.")) for o in extra)
              else STAGES)
    result = {"name": name, "base": base, "presets": plan.get("presets", []),
              "overrides": overrides(plan, base or name, extra),
              "device": gpu} | run(folder, stages)
    result["ran"] = list(result["stage_seconds"])
    if not result["failed"]:
        result |= {"code": code_hashes(folder), "splits": split_hashes(folder)}
    (folder / "manifest.json").write_text(json.dumps(result, indent=2) + "\n")
    # a re-evaluation's adapter is its base run's: the import takes it from that run's pack
    result["packs"] = [p.name for p in pack(folder, work / "out", adapter="train" in result["ran"], part=part)]
    return result


def summary_line(work: Path, r: dict) -> str:
    folder = work / r["name"]
    if r["failed"]:
        tail = (folder / "run.log").read_text(errors="replace").strip().splitlines()[-3:]
        return f"{r['name']}: FAILED in {r['failed']}: " + " | ".join(tail)
    ev = json.loads((folder / "metrics/eval.json").read_text())
    logs = {stage: runlog.read_log(stage, folder) for stage in ("baseline", "train", "evaluate")}
    tr = logs["train"]
    accs = ", ".join(f"{s} {v['accuracy']:.4f}" for s, v in ev.items() if isinstance(v, dict) and "accuracy" in v)
    peaks = "/".join(str(log.get("peak_gpu_memory_gib", "-")) for log in logs.values())
    return (f"{r['name']}: {accs}; train {tr['train_seconds']} s ({tr['train_examples_per_s']} ex/s), "
            f"peak GiB baseline/train/evaluate {peaks}, stages {r['stage_seconds']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="one folder per experiment, packs in WORK/out")
    ap.add_argument("--jobs", type=int, default=4, help="experiments at a time")
    ap.add_argument("--only", nargs="*", help="plan experiments to run (default: all)")
    ap.add_argument("--set", nargs="*", default=[], dest="extra", help="more key=value overrides")
    ap.add_argument("--suffix", default="", help="run as NAME+SUFFIX on top of an earlier NAME run")
    ap.add_argument("--part-size", type=float, default=0, metavar="MiB",
                    help="cut packs larger than this into parts (default 0: one file a run)")
    args = ap.parse_args()
    plan = load_plan(args.plan)
    names = args.only or list(plan["experiments"])
    if unknown := set(names) - set(plan["experiments"]):
        raise SystemExit(f"error: not in {args.plan}: {', '.join(sorted(unknown))}")
    check_models(plan, names, args.extra)
    import torch
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{len(names)} experiments, {args.jobs} at a time, on {gpu}", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(experiment, args.work, n + args.suffix, plan, args.extra,
                               n if args.suffix else None, gpu, int(args.part_size * 2**20)) for n in names]
        for f in futures:
            print(summary_line(args.work, f.result()), flush=True)


if __name__ == "__main__":
    main()
