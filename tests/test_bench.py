"""The benchmark's params handling (its GPU runs cannot happen in CI)."""
import importlib.util

import pytest

from conftest import REPO
from llmclf.params import ParamsError


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.chdir(REPO)
    spec = importlib.util.spec_from_file_location("benchmark", REPO / "bench" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_project_params_apply_presets_then_overrides(bench):
    raw = bench.project_params(["gpu"], ["train.lr=5e-4", "lora.target_modules=all-linear", "train.epochs=2"])
    assert raw["train"]["lr"] == 5e-4 and isinstance(raw["train"]["lr"], float)
    assert raw["train"]["batch_size"] == 32 and raw["train"]["gradient_checkpointing"] is False  # from the preset
    assert raw["lora"]["target_modules"] == "all-linear" and raw["train"]["epochs"] == 2
    assert raw["quant"]["mode"] == "nf4"  # untouched defaults stay


def test_project_params_reject_bad_overrides(bench):
    with pytest.raises(ParamsError, match=r"train\.lrr: unknown key"):
        bench.project_params([], ["train.lrr=1"])
    with pytest.raises(ParamsError, match=r"train\.batch_size"):
        bench.project_params([], ["train.batch_size=0"])


def test_table_lists_each_recipe(bench):
    row = {"recipe": "tutorial", "baseline_test": {"accuracy": 0.25}, "test": {"accuracy": 0.9},
           "baseline_official_test": {"accuracy": 0.26}, "official_test": {"accuracy": 0.89},
           "train_examples_per_s": 25.5, "train_tokens_per_s": 1300.0, "inference_examples_per_s": 318.5,
           "peak_gpu_memory_gib": 0.58, "wall_seconds": 370.1}
    text = bench.table([row, row | {"recipe": "project", "presets": ["gpu"], "overrides": ["train.lr=3e-4"]}])
    lines = text.splitlines()
    assert len(lines) == 4 and "| tutorial | 0.25 | 0.9 | 0.26 | 0.89 |" in lines[2]
    assert lines[3].startswith("| project (gpu train.lr=3e-4) |")
