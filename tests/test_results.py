"""The README's GPU tables show the numbers of the committed result files they cite."""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def row(start: str) -> str:
    """The one README table row that starts with `start`."""
    rows = [line for line in README.splitlines() if line.startswith(start)]
    assert len(rows) == 1, (start, rows)
    return rows[0]


def test_benchmark_table_is_the_h100_run():
    run = json.loads((REPO / "bench/results/h100-tutorial-vs-project.json").read_text())
    assert run["device"] == "NVIDIA H100 80GB HBM3"
    tutorial, project = run["results"]
    assert (tutorial["recipe"], project["recipe"]) == ("tutorial", "project")
    for r, cells in ((tutorial, row("| (a) tutorial as written |")), (project, row("| (b) project, `presets/gpu.yaml` |"))):
        for acc in ("baseline_test", "test", "baseline_official_test", "official_test"):
            assert f"{r[acc]['accuracy']:.4f}" in cells, (acc, cells)
        assert f"{r['train_examples_per_s']:.1f}" in cells and f"{r['peak_gpu_memory_gib']:.3f}" in cells
        assert any(f.format(r["inference_examples_per_s"]) in cells for f in ("{:.1f}", "{:,.0f}"))
    # the targets the text claims: >= 3x training, >= 5x inference, no more memory, accuracy within 0.5 point
    assert project["train_examples_per_s"] >= 3 * tutorial["train_examples_per_s"]
    assert project["inference_examples_per_s"] >= 5 * tutorial["inference_examples_per_s"]
    assert project["peak_gpu_memory_gib"] <= tutorial["peak_gpu_memory_gib"]
    for split in ("test", "official_test"):
        assert project[split]["accuracy"] >= tutorial[split]["accuracy"] - 0.005


def test_accuracy_row_is_the_chosen_run():
    run = REPO / "bench/results/accuracy/smol-4011-r64-final"
    scores = json.loads((run / "eval.json").read_text())
    cells = row("| `presets local gpu accurate` |")
    assert f"{scores['val']['accuracy']:.3f}" in cells and f"**{scores['official_test']['accuracy']:.4f}**" in cells
    train = json.loads((run / "train.json").read_text())
    assert f"{train['train_seconds']:.0f} s" in cells and f"{train['peak_gpu_memory_gib']:.1f} GiB" in cells
