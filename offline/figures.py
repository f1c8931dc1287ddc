"""Figures of a run offline/sweep.py made on a GPU host: its adapter and training log, with the
baseline and evaluate stages of this checkout rerun on any machine (a CPU will do) to draw the pictures.

    .venv/bin/python offline/figures.py PACKS_FOLDER NAME docs/gpu [--set baseline.zero_shot=false]

In a temporary copy of the project: the run's params.yaml (+ --set), `stages/fetch.py`, `sample.py`
and `split.py` (the same rows as the run: its manifest's sha256 per split is checked), the run's
adapter in models/adapter, then `stages/baseline.py` and `stages/evaluate.py`. The training curves
come from the run's own log (offline/import_runs.log_history). The PNGs are copied to the output folder.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "offline"))
from import_runs import check_same, log_history, unpack  # noqa: E402
from llmclf.cli import presets  # noqa: E402
from llmclf.evaluate import plots  # noqa: E402
from sweep import PROJECT, split_hashes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("packs", type=Path)
    ap.add_argument("name")
    ap.add_argument("out", type=Path)
    ap.add_argument("--set", nargs="*", default=[], dest="overrides", help="key=value params overrides")
    ap.add_argument("--no-data-check", dest="data_check", action="store_false")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = unpack(args.packs, args.name, Path(tmp))
        run, work = Path(tmp, args.name), Path(tmp, "project")
        trained = Path(tmp, manifest["base"]) if manifest.get("base") else run
        if manifest.get("base"):
            unpack(args.packs, manifest["base"], Path(tmp))
        work.mkdir()
        for item in PROJECT:
            (shutil.copytree if (ROOT / item).is_dir() else shutil.copy2)(ROOT / item, work / item)
        raw = presets.compose([], args.overrides, root=run)
        if raw["data"]["source"] == "../shared/ag_news":  # older packs name the copy beside the project
            raw["data"]["source"] = "data/ag_news"
        (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        for stage in ("fetch", "sample", "split"):
            subprocess.run([sys.executable, f"stages/{stage}.py"], cwd=work, check=True)
        if args.data_check:
            check_same("data splits", manifest["splits"], split_hashes(work))
        shutil.copytree(trained / "models/adapter", work / "models/adapter")
        for stage in ("baseline", "evaluate"):
            subprocess.run([sys.executable, f"stages/{stage}.py"], cwd=work, check=True)
        args.out.mkdir(parents=True, exist_ok=True)
        plots.training_curves(log_history(trained), args.out / "training_curves.png")
        for png in sorted((work / "metrics/eval/figures").glob("*.png")):
            shutil.copy2(png, args.out / png.name)
        shutil.copy2(work / "metrics/eval.json", args.out / "eval.json")
        shutil.copy2(work / "metrics/baseline.json", args.out / "baseline.json")
    print(f"figures in {args.out}: {', '.join(sorted(p.name for p in args.out.iterdir()))}")


if __name__ == "__main__":
    main()
