"""A stage's fixed costs: the phase split written to logs/<stage>.json (runlog.phase), and the modules a
stage does without left unimported."""
import json
import os
import subprocess
import sys
import time

from llmclf.core import runlog


def test_phases_split_a_stage_from_its_process_start(tmp_path):
    """The first mark closes start-up, timed from the process's start (the interpreter and the imports
    before it included); each phase runs to the next mark, `at` starts one earlier, a repeated name adds up."""
    code = """import time
from llmclf.core.runlog import phase, write_log
time.sleep(0.3)          # start-up: before the first mark
phase("a")
time.sleep(0.2)
phase("b")
time.sleep(0.1)
t = time.perf_counter()
time.sleep(0.1)
phase("a", at=t)         # b ends at t; a again from t
write_log("stage", {"speed": 1})
"""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)
    wall = time.perf_counter() - start
    log = json.loads((tmp_path / "logs" / "stage.json").read_text())
    assert log["speed"] == 1 and list(log["phases"]) == ["start-up", "a", "b"]
    phases = log["phases"]
    assert phases["start-up"] >= 0.3 and phases["a"] >= 0.3 and phases["b"] >= 0.1
    assert phases["b"] < phases["a"] and sum(phases.values()) <= wall


def test_a_log_without_marks_has_no_phases(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runlog, "phase", runlog.Phases())
    runlog.write_log("stage", {"speed": 1})
    assert runlog.read_log("stage") == {"speed": 1}


def test_dense_weights_of_a_bare_base_model_leave_peft_unimported(tiny_model):
    """The baseline stage's dense inference of the untrained model: no LoRA, so no import of peft."""
    code = f"""import sys
from llmclf.core.params import defaults
from llmclf.model.dense import dense_for_inference
from llmclf.model.loading import load_classifier
p = defaults()
model, _ = load_classifier(p.model.model_copy(update={{"name": {str(tiny_model)!r}, "max_length": 64}}),
                           p.quant.model_copy(update={{"mode": "nf4"}}), ["a", "b"])
dense = dense_for_inference(model)
assert not any("4bit" in type(m).__name__ for m in dense.modules())
assert "peft" not in sys.modules, "peft imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})


def test_the_baseline_stage_imports_tfidf_only_to_fit_it():
    """baseline.tfidf off (the GPU benchmark's runs): the stage's imports leave TF-IDF and LogReg out."""
    code = """import sys
from llmclf.evaluate import baselines, inference, metrics, outputs
left_in = [m for m in ("sklearn.feature_extraction", "sklearn.linear_model") if m in sys.modules]
assert not left_in, left_in
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_train_stage_imports_no_scoring_library():
    """Training without teachers or per-epoch validation scores nothing: the train stage's imports leave
    scikit-learn and the ensemble's scoring out (a second of every run's start-up)."""
    imports = "".join(line for line in open("stages/train.py", encoding="utf-8")
                      if line.startswith(("from llmclf", "import torch")))
    code = imports + """import sys
left_in = [m for m in ("sklearn", "llmclf.evaluate.ensemble", "llmclf.evaluate.metrics") if m in sys.modules]
assert not left_in, left_in
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_model_stage_ends_without_the_interpreters_teardown(tmp_path):
    """_env.finish(), a model stage's last line: status 0, the streams flushed, the exit handlers run
    (logging's, tqdm's, DVCLive's), and none of the teardown that follows them: an object's finalizer,
    which the interpreter's teardown would run, never does."""
    code = f"""import atexit, sys
sys.argv = [{str(tmp_path / "fetch.py")!r}]  # a stage that claims no GPU
sys.path.insert(0, "stages")
import _env
atexit.register(lambda: open({str(tmp_path / "atexit")!r}, "w").close())
class Finalized:
    def __del__(self):
        open({str(tmp_path / "finalized")!r}, "w").close()
kept = Finalized()
print("unflushed", end="")
sys.stderr.write("err")
_env.finish()
print("never")
"""
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=buffered)
    assert (done.returncode, done.stdout, done.stderr) == (0, "unflushed", "err")
    assert (tmp_path / "atexit").exists() and not (tmp_path / "finalized").exists()
