"""The committed reference run: dvc.lock and metrics/ (the main job's outputs that git holds) describe
one `make repro` of the committed code, params and data, so that `dvc metrics diff`, `dvc exp show`
and `llmclf report` compare every change with it, and `make repro` in a fresh clone reruns it."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
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


def _load_reference():
    spec = importlib.util.spec_from_file_location("reference", REPO / "bench" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def committed(tmp_path):
    """A repository holding a reference run: dvc.lock and the three metrics files, committed."""
    lock = {"stages": {stage: {"cmd": f"python stages/{stage}.py", "deps": [{"path": f"stages/{stage}.py", "md5": "a"}],
                               "outs": [{"path": f"out/{stage}", "md5": "b"}]}
                       for stage in ("fetch", "sample", "split", "baseline", "train", "evaluate")}}
    (tmp_path / "metrics").mkdir()
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    for name in ("baseline", "train", "eval"):
        (tmp_path / f"metrics/{name}.json").write_text(json.dumps({"test": {"accuracy": 0.866, "ece": 0.0362}}))
    for cmd in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True)
    return tmp_path, lock


def edit_lock(root: Path, lock: dict, stage: str, part: str, value) -> None:
    lock["stages"][stage][part] = value
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))


def test_the_reference_check_passes_only_what_float_noise_explains(committed):
    check = _load_reference().check
    root, lock = committed
    assert check(root) == []  # byte for byte
    edit_lock(root, lock, "train", "outs", [{"path": "out/train", "md5": "c"}])  # other weights
    (root / "metrics/eval.json").write_text(json.dumps({"test": {"accuracy": 0.867, "ece": 0.0371}}))
    assert check(root) == []  # within the tolerance
    (root / "metrics/eval.json").write_text(json.dumps({"test": {"accuracy": 0.87, "ece": 0.0362}}))
    assert check(root) == ["metrics/eval.json: test.accuracy 0.866 -> 0.87"]


@pytest.mark.parametrize("change, expected", [
    (lambda root, lock: edit_lock(root, lock, "split", "outs", [{"path": "out/split", "md5": "x"}]),
     "dvc.lock: stage split: outs differ from the committed run"),
    (lambda root, lock: edit_lock(root, lock, "train", "deps", [{"path": "stages/train.py", "md5": "x"}]),
     "dvc.lock: stage train: deps differ from the committed run"),
    (lambda root, lock: (root / "metrics/train.json").write_text(json.dumps({"test": {"accuracy": 0.866}})),
     "metrics/train.json: test.ece 0.0362 -> None"),
    (lambda root, lock: (root / "metrics/new.csv").write_text("a\n"), "metrics/new.csv: new"),
    (lambda root, lock: (root / "metrics/baseline.json").unlink(), "metrics/baseline.json: deleted"),
    (lambda root, lock: (root / "README.md").write_text("a\n"), "README.md: new"),
])
def test_the_reference_check_fails_what_float_noise_does_not_explain(committed, change, expected):
    root, lock = committed
    change(root, lock)
    assert expected in _load_reference().check(root)
