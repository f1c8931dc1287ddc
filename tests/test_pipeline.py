"""End to end: `dvc repro` of all six stages on real AG News rows and a tiny model, in a temporary
copy of the repo; then experiments rerun exactly the stages their params reach."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, SHARED_AG_NEWS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not SHARED_AG_NEWS.is_dir(), reason=f"no AG News copy at {SHARED_AG_NEWS}"),
]


def run(cmd: list[str], cwd: Path) -> str:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_model) -> Path:
    """A git + DVC copy of the project whose params point at the shared data and the tiny model."""
    dest = tmp_path_factory.mktemp("repo")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["data"]["source"] = str(SHARED_AG_NEWS)
    params["sample"] |= {"train_per_class": 40, "test_per_class": 15, "val_per_class": 10}
    params["model"] |= {"name": str(tiny_model), "max_length": 64}
    params["lora"]["target_modules"] = "all-linear"
    params["train"] |= {"lr": 3e-3, "epochs": 2, "gradient_checkpointing": False, "logging_steps": 5}
    params["evaluate"] = {"batch_size": 64, "splits": ["test", "official_test"]}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "init", "--allow-empty"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project"], dest)
    return dest


def test_repro_runs_all_stages_and_repeats_exactly(repo):
    out = run(["dvc", "repro"], repo)
    assert stages_run(out) == ["fetch", "sample", "split", "baseline", "train", "evaluate"]
    splits = repo / "data" / "splits"
    for split, n in {"train": 40, "test": 15, "val": 10}.items():
        counts = pd.read_parquet(splits / f"{split}.parquet")["label"].value_counts()
        assert counts.to_dict() == {0: n, 1: n, 2: n, 3: n}
    assert len(pd.read_parquet(splits / "official_test.parquet")) == 3800
    summary = json.loads((splits / "summary.json").read_text())
    assert summary["class_weights"] == [0.25] * 4
    for name in ("baseline", "eval"):
        metrics = json.loads((repo / "metrics" / f"{name}.json").read_text())
        assert set(metrics) == {"test", "official_test"}
        assert 0 <= metrics["test"]["accuracy"] <= 1 and "f1_sci_tech" in metrics["test"]
    assert (repo / "models" / "adapter" / "adapter_model.safetensors").is_file()
    assert (repo / "metrics" / "eval" / "confusion_test.png").is_file()
    lock = (repo / "dvc.lock").read_text()

    again = run(["dvc", "repro"], repo)
    assert stages_run(again) == []
    assert "is up to date" in run(["dvc", "status"], repo) or "up to date" in again
    assert (repo / "dvc.lock").read_text() == lock
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results"], repo)


def test_experiments_rerun_only_the_stages_their_params_reach(repo):
    out = run(["dvc", "exp", "run", "-S", "lora.r=8"], repo)
    assert stages_run(out) == ["train", "evaluate"]
    diff = run(["dvc", "metrics", "diff", "--all"], repo)
    assert "test.accuracy" in diff and "test.balanced_accuracy" in diff and "train_loss" in diff
    shown = run(["dvc", "exp", "show", "--no-pager", "--md"], repo)
    assert "test.accuracy" in shown and "lora.r" in shown

    out = run(["dvc", "exp", "run", "-S", "sample.train_per_class=30", "split"], repo)
    assert stages_run(out) == ["sample", "split"]
    counts = pd.read_parquet(repo / "data" / "splits" / "train.parquet")["label"].value_counts()
    assert counts.to_dict() == {0: 30, 1: 30, 2: 30, 3: 30}


def test_predict_export_and_report_on_the_pipeline_outputs(repo):
    (repo / "news.txt").write_text("Stocks rallied as the merger lifted profit forecasts\nThe striker scored twice\n")
    run(["llmclf", "predict", "news.txt", "-o", "predictions.jsonl"], repo)
    rows = [json.loads(line) for line in (repo / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1] and all(r["label"] in r["probs"] for r in rows)

    run(["llmclf", "export", "-o", "models/merged"], repo)
    assert (repo / "models" / "merged" / "config.json").is_file()

    run(["llmclf", "report", "--rev", "HEAD"], repo)
    report = (repo / "metrics" / "report.md").read_text()
    assert "## Metrics" in report and "test.accuracy" in report  # lora.r=8 changed the metrics
    assert "| lora.r" in report and "| 16 " in report and "| 8 " in report
    assert re.search(r"\| test \| sports \| [0-9.]+ \| [0-9.]+ \| [+-][0-9.]+ \|", report)
    assert "![confusion_test](eval/confusion_test.png)" in report
