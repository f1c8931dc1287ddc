"""README.md is the front door: short, its links resolve, and its numbers are those of the committed
files it cites (the reference run's metrics, the main job's timing, the GPU benchmark)."""
from __future__ import annotations

import json
import re
import sys

from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def load(path: str) -> dict:
    return json.loads((REPO / path).read_text(encoding="utf-8"))


def test_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links
    assert [link for link in links if not link.startswith("http") and not (REPO / link).exists()] == []


def test_cpu_table_is_the_committed_reference_run():
    ev, base = load("metrics/eval.json")["test"], load("metrics/baseline.json")
    rows = {"fine-tuned": ev, **{name: base[key]["test"] for name, key in
                                 [("untrained head", "untrained_head"), ("TF-IDF", "tfidf_logreg"),
                                  ("zero-shot", "zero_shot")]}}
    for name, scores in rows.items():
        line = next(r for r in README.splitlines() if r.startswith("| ") and name in r)
        for key in ("accuracy", "macro_f1", "ece"):
            assert f"{scores[key]:.4f}" in line, (name, key, line)
    job = load("bench/results/main-job-cpu.json")
    assert job["git_status"] == "" and job["metrics_diff"].strip() == ""  # reproduced, byte for byte
    assert f"{job['wall_seconds'] / 60:.0f} min" in README and job["commit"]


def test_gpu_headline_row_is_the_benchmark_json():
    sys.path.insert(0, str(REPO / "bench"))
    import benchmark

    row = benchmark.headline(load("bench/results/gpu-presets/h200.json"))
    assert row in README.splitlines()
