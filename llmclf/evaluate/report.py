"""metrics/report.md for a pull request: the workspace's metrics and params against a git revision
(dvc's own `metrics diff --md` / `params diff --md`), per-class F1 changes and the evaluation figures."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ..core.atomic import write_text
from ..core.errors import UserError

EVAL = "metrics/eval.json"
# what the report reads, itself and through dvc's diffs: never its output
READS = (EVAL, "metrics/baseline.json", "metrics/train.json", "params.yaml", "dvc.yaml", "dvc.lock")


def run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()[-400:]}")
    return done.stdout.strip()


def at_rev(rev: str, path: str) -> dict | None:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def f1_changes(old: dict | None, new: dict) -> str:
    rows = ["| split | class | F1 before | F1 now | change |", "|---|---|---|---|---|"]
    for split, scores in new.items():
        if not isinstance(scores, dict):
            continue
        for key, value in scores.items():
            if key.startswith("f1_"):
                before = (old or {}).get(split, {}).get(key)
                change = "" if before is None else f"{value - before:+.4f}"
                rows.append(f"| {split} | {key[3:]} | {'' if before is None else before} | {value} | {change} |")
    return "\n".join(rows)


def write(rev: str, output: str) -> None:
    if not Path(EVAL).is_file():
        raise UserError(f"{EVAL}: missing; run `dvc repro` first")
    run("git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    new = json.loads(Path(EVAL).read_text(encoding="utf-8"))
    images = sorted(Path("metrics/eval/figures").glob("*.png"))  # confusion, per-class F1, reliability per split
    rel = lambda p: os.path.relpath(p, Path(output).parent)  # noqa: E731
    parts = [
        f"# Model report: workspace vs `{rev}`", "",
        "## Metrics", "", run("dvc", "metrics", "diff", rev, "--md") or "No metric changed.", "",
        "## Params", "", run("dvc", "params", "diff", rev, "--md") or "No param changed.", "",
        "## Per-class F1", "", f1_changes(at_rev(rev, EVAL), new), "",
        "## Figures: baselines vs fine-tuned (confusion rows normalised), calibration", "",
        *[f"![{p.stem}]({rel(p)})" for p in images], "",
    ]
    write_text("\n".join(parts), output)
    print(f"report: {output}")
