"""Is the committed reference run what the code produces? Run after `dvc repro --force` (what
`make check-reference` and CI do), in a checkout of the commit under test:

    python bench/reference.py

Passes when `git status` shows nothing: every output reproduced byte for byte. Otherwise it passes
only where the weights differ in float noise (another CPU kind), as docs/guarantees.md states: the
data stages' outputs, every stage's code and params exactly as locked, no tracked file changed but
dvc.lock's hashes of the model stages' outputs and metrics/, and every committed metric within
TOLERANCE. Anything else fails with one line per difference. Exit status 1 on failure.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

DATA_STAGES = ("fetch", "sample", "split")
TOLERANCE = 0.002  # a metric's largest change in float noise; 2 rows of 1,000 flip at 0.002
METRICS = ("metrics/baseline.json", "metrics/train.json", "metrics/eval.json")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def leaves(obj, key: str = "") -> dict:
    """Numbers of a metrics JSON by dotted key, as `dvc metrics diff` names them."""
    if isinstance(obj, dict):
        return {k: v for name, sub in obj.items() for k, v in leaves(sub, f"{key}{name}.").items()}
    return {key.rstrip("."): obj}


def check(root: Path) -> list[str]:
    """The differences between the checkout and its commit that the guarantee does not allow."""
    status = git("status", "--porcelain", "--untracked-files=all", cwd=root).splitlines()
    if not status:
        return []
    kind = {"??": "new", "D": "deleted"}  # a file that appears or goes is no float noise
    problems = [f"{line[3:]}: {kind.get(line[:2].strip(), 'changed')}" for line in status
                if line[:2].strip() in kind or line[3:] != "dvc.lock" and not line[3:].startswith("metrics/")]
    old = yaml.safe_load(git("show", "HEAD:dvc.lock", cwd=root))["stages"]
    new = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    for stage in old.keys() | new.keys():
        was, now = old.get(stage, {}), new.get(stage, {})
        for part in ("cmd", "deps", "params") + (("outs",) if stage in DATA_STAGES else ()):
            if was.get(part) != now.get(part):
                problems.append(f"dvc.lock: stage {stage}: {part} differ from the committed run")
    for path in METRICS:
        was = leaves(json.loads(git("show", f"HEAD:{path}", cwd=root)))
        now = leaves(json.loads((root / path).read_text(encoding="utf-8"))) if (root / path).is_file() else {}
        for key in sorted(was.keys() | now.keys()):
            a, b = was.get(key), now.get(key)
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
            if numbers and abs(a - b) > TOLERANCE or not numbers and a != b:
                problems.append(f"{path}: {key} {a} -> {b}")
    return problems


def main() -> None:
    root = Path(git("rev-parse", "--show-toplevel", cwd=Path.cwd()).strip())
    problems = check(root)
    changed = git("status", "--porcelain", "--untracked-files=all", cwd=root)
    if problems:
        print("The committed reference run is not what the code produces:", *problems, sep="\n  ")
        print("Reproduce it (`dvc repro`, never `dvc commit`) and commit dvc.lock and metrics/ with the change.")
        sys.exit(1)
    print("reference run reproduced byte for byte" if not changed else
          f"reference run reproduced within float noise (metrics within {TOLERANCE}):\n{changed}")


if __name__ == "__main__":
    main()
