"""The committed reference run: dvc.lock and metrics/ (the main job's outputs that git holds) describe
one `make repro` of the committed code, params and data, so that `dvc metrics diff`, `dvc exp show`
and `llmclf report` compare every change with it, and `make repro` in a fresh clone reruns it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

LOCK = REPO / "dvc.lock"
ABSENT = ("deleted", "not in cache")  # an output not in the workspace; "not in cache": nor in DVC's cache


def stale_entries(status: dict, tracked: set[str]) -> list[str]:
    """What `dvc status --json` reports that the commit does not explain. Outputs and deps that DVC
    caches (data/, models/) are absent from a clone until `dvc pull` or `make repro`: "deleted" or "not
    in cache" there is expected. Anything modified or new, a deleted file that git tracks, a changed command: stale."""
    stale = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):  # e.g. "changed command", "always changed"
                stale.append(f"{stage}: {change}")
                continue
            for kind, paths in change.items():
                for path, state in paths.items():
                    if isinstance(state, dict):  # params.yaml: {key: modified | new | deleted}
                        stale += [f"{stage}: {kind} {path} {k}: {s}" for k, s in state.items()]
                    elif state not in ABSENT or path in tracked or any(t.startswith(path + "/") for t in tracked):
                        stale.append(f"{stage}: {kind} {path}: {state}")
    return stale


def test_stale_entries_tell_a_fresh_clone_from_a_stale_run():
    tracked = {"metrics/eval.json", "metrics/train/plots/metrics/loss.tsv", "llmclf/data.py"}
    fresh = {"sample": [{"changed deps": {"data/raw": "deleted"}}, {"changed outs": {"data/sampled.parquet": "deleted"}}],
             "train": [{"changed outs": {"models/adapter": "not in cache"}}]}
    assert stale_entries(fresh, tracked) == []
    stale = {"train": [{"changed deps": {"llmclf/data.py": "modified", "params.yaml": {"lora.r": "modified"}}},
                       {"changed outs": {"metrics/train": "deleted", "models/adapter": "deleted"}}, "changed command"],
             "evaluate": [{"changed outs": {"metrics/eval.json": "modified"}}]}
    assert stale_entries(stale, tracked) == [
        "train: changed deps llmclf/data.py: modified", "train: changed deps params.yaml lora.r: modified",
        "train: changed outs metrics/train: deleted", "train: changed command",
        "evaluate: changed outs metrics/eval.json: modified"]


def test_the_committed_metrics_are_the_committed_run():
    """Every stage of dvc.lock matches the checkout's code, params and data, and the metrics git holds
    are the outputs it records. After changing what a stage depends on: `make repro`, then commit
    dvc.lock and metrics/ with the change."""
    assert LOCK.is_file(), "dvc.lock is not committed: run `make repro` and commit dvc.lock and metrics/"
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["dvc", "status", "--json"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    tracked = set(subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.split())
    assert stale_entries(json.loads(done.stdout or "{}"), tracked) == []
