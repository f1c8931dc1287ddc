"""The benchmarks' logic (their GPU runs cannot happen in CI)."""
import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import AG_NEWS, REPO
from llmclf.cli import presets
from llmclf.core.params import ParamsError


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.chdir(REPO)
    spec = importlib.util.spec_from_file_location("benchmark", REPO / "bench" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compose_applies_presets_then_overrides(bench):
    raw = presets.compose(["gpu"], ["train.lr=5e-4", "lora.target_modules=all-linear", "train.epochs=2"])
    assert raw["train"]["lr"] == 5e-4 and isinstance(raw["train"]["lr"], float)
    assert raw["train"]["batch_size"] == 256 and raw["train"]["gradient_checkpointing"] is False  # from the preset
    assert raw["lora"]["target_modules"] == "all-linear" and raw["train"]["epochs"] == 2
    assert raw["quant"]["mode"] == "nf4"  # untouched defaults stay


def test_compose_rejects_bad_overrides(bench):
    with pytest.raises(ParamsError, match=r"train\.lrr: unknown key"):
        presets.compose([], ["train.lrr=1"])
    with pytest.raises(ParamsError, match=r"train\.batch_size"):
        presets.compose([], ["train.batch_size=0"])


def run(recipe, train, infer, peak, test=0.89, official=0.88, **extra):
    return {"recipe": recipe, "baseline_test": {"accuracy": 0.25}, "test": {"accuracy": test},
            "baseline_official_test": {"accuracy": 0.26}, "official_test": {"accuracy": official},
            "train_examples_per_s": train, "train_tokens_per_s": 50 * train, "inference_examples_per_s": infer,
            "baseline_inference_examples_per_s": infer, "peak_gpu_memory_gib": peak, "wall_seconds": 370.1} | extra


def test_table_and_targets_compare_each_preset_with_the_tutorial(bench):
    result = {"device": "GPU", "results": [
        run("project", 900.0, 6000.0, 20.0, test=0.884, presets=["gpu"], overrides=[]),
        run("project", 400.0, 6000.0, 20.0, presets=["qlora"], overrides=[]),
        {"recipe": "project", "presets": ["small-gpu"], "overrides": [], "error": "stage train failed"},
        run("tutorial", 17.0, 280.0, 0.58)]}
    lines = bench.bench_table(result["results"]).splitlines()
    assert len(lines) == 6 and lines[2].startswith("| gpu | 0.2500 → 0.8840 | 0.2600 → 0.8800 | 900.0 (52.9x) |")
    assert "| 6,000 (21.4x) | 20.00 |" in lines[2] and lines[4].startswith("| small-gpu | failed: stage train failed |")
    assert lines[5].startswith("| tutorial as written |") and "x)" not in lines[5]
    met = {(c["preset"], c["target"]): c["met"] for c in bench.targets(result)}
    assert met[("gpu", "training x tutorial")] and met[("gpu", "peak GiB")] and met[("gpu", "inference x tutorial")]
    assert not met[("gpu", "test accuracy change, points")] and met[("gpu", "official_test accuracy change, points")]
    assert not met[("qlora", "training x tutorial")] and not met[("small-gpu", "runs")]
    assert "| qlora | training x tutorial | 23.5 | ≥ 25 | **no** |" in bench.summary(result)
    assert sys.modules["tables"].headline(result) == "| `gpu` preset, GPU | 0.8800 (tutorial 0.8800) | 52.9x | 21.4x | 20.0 GiB |"


def test_llama8b_benchmark_runs_its_settings_on_a_tiny_shape(tiny_model, tmp_path):
    """bench/llama8b.py's code path (build, save, load + quantize, LoRA, train, predict, profile) on the
    CPU, with a 2-layer shape instead of Llama-3-8B's; its GPU numbers come from a real run."""
    out, prof = tmp_path / "llama8b.json", tmp_path / "profile"
    cmd = [sys.executable, "bench/llama8b.py", "--shape", "tiny", "--steps", "3", "--warmup", "1", "--infer", "40",
           "--settings", "tutorial", "project", "--tokenizer", str(tiny_model), "--model-dir", str(tmp_path / "m"),
           "--train-csv", str(AG_NEWS / "train.csv"), "--out", str(out), "--profile", str(prof)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads((tmp_path / "m" / "config.json").read_text())["num_hidden_layers"] == 2
    assert [r["setting"] for r in result["results"]] == ["tutorial", "project"]
    tutorial, project = result["results"]
    assert (tutorial["batch_size"], tutorial["gradient_checkpointing"]) == (8, True)
    assert (project["batch_size"], project["gradient_checkpointing"]) == (64, False)  # presets/small-gpu.yaml
    for r in result["results"]:
        assert r["train_steps_timed"] == 2 and r["train_examples_per_s"] > 0 and r["inference_examples_per_s"] > 0
        assert r["train_tokens_per_s"] > r["train_examples_per_s"]  # several tokens a row
        # 5 more steps traced after the timed ones; on a CPU the GPU is never busy
        assert r["train_steps"] == 8 and r["train_profile"]["steps"] == 5
        assert r["train_profile"]["wall_seconds_per_step"] > 0 and r["train_profile"]["gpu_busy_fraction"] == 0
        assert "aten::mm" in (prof / f"{r['setting']}-train.txt").read_text()
    assert project["inference_profile"]["batches"] >= 1 and project["inference_profile"]["wall_seconds_per_batch"] > 0
    assert "aten::mm" in (prof / "project-inference.txt").read_text() and "inference_profile" not in tutorial



def test_llama8b_benchmark_measures_one_and_two_processes(tiny_model, tmp_path):
    """--processes 1 2: the DDP path (relaunch, two CPU processes over gloo) on the tiny shape, one JSON."""
    out = tmp_path / "llama8b-ddp.json"
    cmd = [sys.executable, "bench/llama8b.py", "--shape", "tiny", "--steps", "3", "--warmup", "1",
           "--settings", "project", "--processes", "1", "2", "--tokenizer", str(tiny_model),
           "--model-dir", str(tmp_path / "m"), "--train-csv", str(AG_NEWS / "train.csv"), "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    one, two = result["runs"]
    assert (one["processes"], two["processes"]) == (1, 2)
    assert [r["rank"] for r in one["ranks"]] == [0] and [r["rank"] for r in two["ranks"]] == [0, 1]
    for run in (one, two):
        assert run["effective_batch"] == 64 and run["batch_scaling"] == "fixed"  # 32 rows on each of 2
        assert run["train_steps"] == 3 and run["train_steps_timed"] == 2 and run["train_examples_per_s"] > 0
        assert all(r["train_peak_gpu_memory_gib"] >= 0 and r["train_seconds_timed"] > 0 for r in run["ranks"])
    [comparison] = result["comparisons"]
    assert comparison["processes"] == 2 and comparison["same_steps"]
    assert comparison["scaling"] == round(two["train_examples_per_s"] / one["train_examples_per_s"], 2)

@pytest.fixture
def multigpu(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO / "bench"))  # it imports benchmark.py beside it
    spec = importlib.util.spec_from_file_location("multigpu", REPO / "bench" / "multigpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scaling_run(processes, examples_per_s, test_acc, official_acc, steps=250):
    return {"processes": processes, "train_examples_per_s": examples_per_s, "train_seconds": 8000 / examples_per_s,
            "train_steps": steps, "test": {"accuracy": test_acc}, "official_test": {"accuracy": official_acc},
            "peak_gpu_memory_gib": 5.5, "stage_seconds": {"train": 120.0}, "wall_seconds": 150.0}


def test_multigpu_compares_each_run_with_the_first(multigpu):
    one, two = scaling_run(1, 95.0, 0.8955, 0.8892), scaling_run(2, 180.5, 0.8925, 0.8900)
    assert multigpu.compare([one, two]) == [{
        "processes": 2, "against_processes": 1, "scaling": 1.9, "same_steps": True, "meets_targets": True,
        "accuracy_change_points": {"test": -0.3, "official_test": 0.08}}]
    slow, worse = scaling_run(2, 160.0, 0.8955, 0.8892), scaling_run(2, 190.0, 0.8895, 0.8892, steps=125)
    assert multigpu.compare([one, slow])[0]["meets_targets"] is False  # 1.68x
    lost = multigpu.compare([one, worse])[0]  # 2x, but 0.6 point lost, and half the steps: a doubled batch
    assert lost["accuracy_change_points"]["test"] == -0.6 and not lost["same_steps"] and not lost["meets_targets"]


def test_multigpu_table_has_a_row_per_run(multigpu):
    lines = multigpu.table([scaling_run(1, 95.0, 0.8955, 0.8892), scaling_run(2, 180.5, 0.8925, 0.89)]).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| 1 | 95.0 | 1.0 |") and lines[3].startswith("| 2 | 180.5 | 1.9 |")
    assert "| 0.8925 | 0.89 | 5.5 | 120.0 | 150.0 |" in lines[3]



def test_a_profiled_stage_runs_as_a_script_and_its_summary_names_where_the_time_went(bench, tmp_path):
    """--profile: a stage runs as `python stages/NAME.py` would (its folder importable, __main__, __file__),
    with no tqdm monitor thread; the summary lists the functions by cumulative and by own time."""
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages/_sibling.py").write_text("def costly_helper():\n    return sum(i * i for i in range(200_000))\n")
    (tmp_path / "stages/run.py").write_text(
        "import threading, _sibling\nfrom tqdm.auto import tqdm\nfrom pathlib import Path\n"
        "if __name__ == '__main__':\n"
        "    for _ in tqdm(range(2)):\n        _sibling.costly_helper()\n"
        "    Path('threads.txt').write_text(str(threading.active_count()) + ' ' + Path(__file__).name)\n")
    subprocess.run(bench.profiled("stages/run.py", tmp_path / "run.prof"), cwd=tmp_path, check=True)
    assert (tmp_path / "threads.txt").read_text() == "1 run.py"  # the main thread alone: no tqdm monitor
    text = bench.profile_summary(tmp_path / "run.prof")
    assert "Ordered by: cumulative time" in text and "Ordered by: internal time" in text
    assert "costly_helper" in text and "<genexpr>" in text


def test_host_state_records_the_load_and_every_gpu(bench, monkeypatch, tmp_path):
    """Each run records the host's load before and after it: the 1-minute load average and, where
    nvidia-smi answers, every GPU's utilization and memory in use (other runs beside this one)."""
    assert bench.gpu_states("0, 8, 1291\n1, 100, 56591\n") == [
        {"index": 0, "utilization_percent": 8, "memory_used_mib": 1291},
        {"index": 1, "utilization_percent": 100, "memory_used_mib": 56591}]
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, 3, 512'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    state = bench.host_state()
    assert state["gpus"] == [{"index": 0, "utilization_percent": 3, "memory_used_mib": 512}]
    assert state["load_average_1min"] >= 0
    monkeypatch.setenv("PATH", str(tmp_path / "none"))  # no nvidia-smi: the load alone
    assert set(bench.host_state()) == {"load_average_1min"}
