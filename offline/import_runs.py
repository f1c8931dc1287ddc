"""Record runs made by offline/sweep.py on a machine without DVC as DVC experiments of this repo.

    python offline/import_runs.py PACKS_FOLDER [NAME ...]     # NAME.tgz or NAME.tgz.00, .01, ... in PACKS_FOLDER

For each run: its params.yaml replaces this one; `dvc repro split` rebuilds the data in this checkout, which must
have the same rows as the run's (sha256 in its manifest), and the code DVC tracks as stage deps
the same bytes; then the run's metrics/ (training curves rebuilt from its log where DVCLive was
missing) and models/adapter/ take their place, `dvc commit` records them in dvc.lock
and `dvc exp save -n NAME` makes the experiment (`dvc exp show` lists it). params.yaml and dvc.lock
are restored afterwards; the outputs stay as the last run left them (`dvc exp apply NAME` picks
one). A re-evaluation's pack has no adapter: it takes its base run's, and its curves.
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "offline"))
from sweep import code_hashes, split_hashes  # noqa: E402


def sh(*cmd: str) -> str:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # the venv's dvc
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def unpack(packs: Path, name: str, dest: Path) -> dict:
    parts = sorted(packs.glob(f"{name}.tgz.[0-9][0-9]")) or [packs / f"{name}.tgz"]
    if not parts[0].is_file():
        raise SystemExit(f"error: no {name}.tgz (or .tgz.00, ...) in {packs}")
    blob = b"".join(p.read_bytes() for p in parts)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(dest / name, filter="data")
    manifest = json.loads((dest / name / "manifest.json").read_text())
    if manifest["failed"]:
        raise SystemExit(f"error: {name} failed in its {manifest['failed']} stage; nothing to import")
    return manifest


def check_same(what: str, theirs: dict, ours: dict) -> None:
    if diff := sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k)):
        raise SystemExit(f"error: the run's {what} differ from this checkout's: {', '.join(diff)}")


def log_history(trained: Path) -> list[dict]:
    """The Trainer's log history (with steps) from its printed logs, 4 significant digits, in the log
    of the run that trained (a re-evaluation's base)."""
    text = (trained / "run.log").read_text(errors="replace").replace("\r", "\n")
    logs = [ast.literal_eval(line[line.index("{'"):]) for line in text.splitlines()  # after progress-bar codes
            if "{'" in line and line.rstrip().endswith("}")]
    every = yaml.safe_load((trained / "params.yaml").read_text())["train"]["logging_steps"]
    train = [{k: float(v) for k, v in log.items()} for log in logs if "loss" in log]
    steps_per_epoch = every / train[0]["epoch"]
    history = [log | {"step": every * (i + 1)} for i, log in enumerate(train)]
    return history + [{k: float(v) for k, v in log.items()} | {"step": round(float(log["epoch"]) * steps_per_epoch)}
                      for log in logs if "eval_loss" in log]


def rebuild_curves(run: Path, trained: Path) -> None:
    """Where DVCLive was missing (a bare GPU host), the train stage wrote no curves: rebuild them in
    DVCLive's layout (one TSV a metric, eval_* under eval/) from the Trainer's printed logs."""
    rows: dict[str, list[str]] = {}
    for log in log_history(trained):
        for key, value in log.items():
            if key != "step" and ("eval_loss" not in log or key.startswith("eval_")):
                name = f"eval/{key[5:]}" if key.startswith("eval_") else key
                rows.setdefault(name, []).append(f"{log['step']}\t{value}")
    for key, lines in rows.items():
        tsv = run / "metrics/train/plots/metrics" / f"{key}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"step\t{key.split('/')[-1]}\n" + "\n".join(lines) + "\n")


def import_run(run: Path, name: str, trained: Path, data_check: bool) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    check_same("code files", manifest["code"], code_hashes(ROOT))
    shutil.copy2(run / "params.yaml", ROOT / "params.yaml")
    sh("dvc", "repro", "split")
    if data_check:
        check_same("data splits", manifest["splits"], split_hashes(ROOT))
    if not (run / "metrics/train/plots").is_dir():
        rebuild_curves(run, trained)
    for out, src in (("metrics", run / "metrics"), ("models/adapter", trained / "models/adapter")):
        shutil.rmtree(ROOT / out, ignore_errors=True)
        shutil.copytree(src, ROOT / out)
    if (run / "models/calibration.json").is_file():  # the evaluate stage's temperature, where it has one
        shutil.copy2(run / "models/calibration.json", ROOT / "models/calibration.json")
    sh("dvc", "commit", "--force", "--quiet")
    sh("dvc", "exp", "save", "--force", "--name", name, "--message",
       f"{name}: run on {manifest['device']} by offline/sweep.py, imported by offline/import_runs.py")
    print(f"{name}: saved as a DVC experiment ({manifest['device']}, {' '.join(manifest['overrides'])})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("packs", type=Path, help="folder with the .tgz packs offline/sweep.py wrote")
    ap.add_argument("names", nargs="*", help="runs to import (default: every pack in PACKS_FOLDER)")
    ap.add_argument("--no-data-check", dest="data_check", action="store_false",
                    help="for packs whose manifest hashed the Parquet bytes (before content hashes)")
    args = ap.parse_args()
    names = args.names or sorted({p.name.split(".tgz")[0] for p in args.packs.glob("*.tgz*")})
    if sh("git", "status", "--porcelain", "--untracked-files=no").strip():
        raise SystemExit("error: commit or stash your changes first: `dvc exp save` records the whole workspace")
    tracked_lock = bool(sh("git", "ls-files", "dvc.lock").strip())
    with tempfile.TemporaryDirectory() as tmp:
        runs = {n: unpack(args.packs, n, Path(tmp)) for n in names}
        for base in {m["base"] for m in runs.values() if m.get("base")} - set(runs):
            unpack(args.packs, base, Path(tmp))  # only for its adapter
        try:
            for name, manifest in runs.items():
                import_run(Path(tmp, name), name, Path(tmp, manifest.get("base") or name), args.data_check)
        finally:  # dvc's autostage staged what it touched: the workspace was clean, so unstage all
            sh("git", "reset", "-q")
            sh("git", "checkout", "--", "params.yaml", *(["dvc.lock"] if tracked_lock else []))
            if not tracked_lock:
                (ROOT / "dvc.lock").unlink(missing_ok=True)
    print(sh("dvc", "exp", "show", "--no-pager", "--md", "--only-changed"))


if __name__ == "__main__":
    main()
