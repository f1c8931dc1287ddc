"""The main job from a fresh clone, timed and checked: `git clone` of this repository's HEAD, then
`dvc repro` there (what `make repro` runs once the virtual environment exists), then what it promises:
`git status` shows nothing and `dvc metrics diff` shows no change against the committed reference run.

    python bench/main_job.py --out bench/results/main-job-cpu.json

Runs with this interpreter's environment (its bin folder first on PATH), in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    sh = lambda cmd, cwd: subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        sh(["git", "clone", "-q", str(ROOT), str(clone)], ROOT)
        start = time.perf_counter()
        log = subprocess.run(["dvc", "repro"], cwd=clone, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        seconds = time.perf_counter() - start
        stages = re.findall(r"Running stage '(\w+)'", log.stdout)
        print(log.stdout[-3000:])
        if log.returncode:
            sys.exit(f"error: dvc repro failed in the fresh clone (exit {log.returncode})")
        result = {
            "command": "git clone, then dvc repro (make repro with .venv present)",
            "commit": sh(["git", "rev-parse", "HEAD"], clone).strip(),
            "cpu": cpu_name(), "cpu_cores": os.cpu_count(), "torch_threads": int(sh(
                [sys.executable, "-c", "import torch; print(torch.get_num_threads())"], clone)),
            "wall_seconds": round(seconds, 1),
            "stages_run": stages,
            # each stage's wall time split into phases (llmclf/core/runlog.py), from its logs/<stage>.json
            "stage_phases": {stage: json.loads((clone / "logs" / f"{stage}.json").read_text()).get("phases")
                             for stage in stages},
            "git_status": sh(["git", "status", "--porcelain"], clone),
            "metrics_diff": sh(["dvc", "metrics", "diff"], clone),
        }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
