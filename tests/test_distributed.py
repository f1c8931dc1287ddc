"""The train stage under DDP: two CPU processes over gloo (what two GPUs do over NCCL), on the tiny model."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors import safe_open

from conftest import REPO
from llmclf.core.errors import UserError
from llmclf.core.params import parse
from llmclf.evaluate import inference
from llmclf.model.adapter import load_adapter
from llmclf.model.loading import load_classifier
from llmclf.model.lora import add_lora
from llmclf.train import distributed, trainer as trainers
from tiny import CLASSES, Train, params_with, synthetic_texts

# Loaded by every Python process the stage starts: notes each file or folder it creates, replaces or
# removes under the project, so the test can tell which process wrote what. (Files that C++ or Rust code
# writes, torch.save's and safetensors', are not seen; outputs show as their atomic renames.)
WRITE_LOG = '''
import os, sys
root, seen = os.environ["WRITE_LOG_ROOT"], set()
rank = os.environ.get("RANK", "launcher")
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, os.PathLike)) and \\
            ((isinstance(args[1], str) and set(args[1]) & set("wax+")) or (args[2] or 0) & (os.O_WRONLY | os.O_RDWR)):
        paths = [args[0]]
    elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
        paths = [a for a in args[:2] if isinstance(a, (str, os.PathLike))]
    else:
        return
    new = {os.path.relpath(p, root) for p in map(os.path.abspath, paths) if p.startswith(root + os.sep)} - seen
    if new:  # logged as it happens: a worker leaves with os._exit, no atexit
        seen.update(new)
        with open(os.path.join(os.environ["WRITE_LOG_DIR"], f"{rank}-{os.getpid()}"), "a") as log:
            log.write("".join(p + "\\n" for p in sorted(new)))
sys.addaudithook(hook)
'''


def make_project(folder: Path, tiny_model: Path, **train) -> Path:
    """params.yaml and data/splits as the train stage reads them, from the tiny model's synthetic corpus."""
    splits = folder / "data" / "splits"
    splits.mkdir(parents=True)
    for split, n, seed in [("train", 16, 1), ("val", 8, 2)]:
        texts, labels = synthetic_texts(n, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(splits / f"{split}.parquet", index=False)
    (splits / "summary.json").write_text(json.dumps({"class_weights": [0.25] * 4}))
    p = params_with(data={"classes": CLASSES}, model={"name": str(tiny_model), "max_length": 64},
                    lora={"target_modules": "all-linear"},
                    train={"lr": 3e-3, "batch_size": 8, "epochs": 2, "gradient_checkpointing": False,
                           "logging_steps": 2, "checkpoint_steps": 4} | train)
    (folder / "params.yaml").write_text(yaml.safe_dump(p.model_dump()))
    return folder


def test_train_stage_on_two_processes_writes_once_the_same_adapter(tiny_model, tmp_path):
    project = make_project(tmp_path / "project", tiny_model, num_processes=2)
    site, log = tmp_path / "site", tmp_path / "writes"
    site.mkdir(), log.mkdir()
    (site / "sitecustomize.py").write_text(WRITE_LOG)
    env = os.environ | {"PYTHONPATH": str(site), "WRITE_LOG_ROOT": str(project), "WRITE_LOG_DIR": str(log)}
    done = subprocess.run([sys.executable, str(REPO / "stages" / "train.py")], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    summary = json.loads((project / "metrics" / "train.json").read_text())
    assert summary["processes"] == 2
    assert summary["train_steps"] == 2 * 64 // 8  # each step one effective batch of 8: 4 rows on each process
    assert summary["effective_batch"] == 8 and summary["effective_lr"] == 3e-3  # fixed: as on one process
    writes = {f.name.split("-")[0]: f.read_text().split() for f in log.iterdir()}
    assert set(writes) == {"launcher", "0", "1"}, writes
    assert any(w.startswith("models/") for w in writes["0"]) and "metrics/train.json" in writes["0"]
    assert "metrics/train" in writes["0"]  # the training curves, renamed into place
    # rank 1 only makes the checkpoint folders its random-number state goes into (for resuming)
    assert writes["1"] and all(w.startswith(".checkpoints/train/checkpoint-") for w in writes["1"]), writes["1"]
    assert sorted(writes["launcher"]) == [".checkpoints", ".checkpoints/train.lock"]  # one training run at a time

    # the adapter format of a single-process run: PEFT's tensor names and shapes, reloaded to predict
    p = parse(yaml.safe_load((project / "params.yaml").read_text()))
    model, _ = load_classifier(p.model, p.quant, CLASSES)
    fresh = add_lora(model, p.lora, quantized=True, gradient_checkpointing=False)
    from peft import get_peft_model_state_dict
    expected = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(fresh).items()}
    with safe_open(project / "models" / "adapter" / "adapter_model.safetensors", "pt") as f:
        assert {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()} == expected
    reloaded, tok, classes = load_adapter(project / "models" / "adapter")
    texts, labels = synthetic_texts(4, seed=9)
    accuracy = (inference.predict_logits(reloaded, tok, texts, 8, 64).argmax(1) == labels).mean()
    assert classes == CLASSES and accuracy > 0.5


def test_batch_size_is_the_effective_batch_over_the_processes():
    assert distributed.per_device_batches(Train(batch_size=32, eval_batch_size=128), 1) == (32, 128)
    assert distributed.per_device_batches(Train(batch_size=32, eval_batch_size=128), 2) == (16, 64)
    assert distributed.per_device_batches(Train(batch_size=8, eval_batch_size=7), 2) == (4, 4)
    with pytest.raises(UserError, match="batch_size 8 does not split evenly over 3 processes"):
        distributed.per_device_batches(Train(batch_size=8), 3)



def test_weak_scaling_keeps_each_process_batch_and_grows_the_effective_batch_and_lr(monkeypatch, tmp_path):
    weak = Train(batch_size=8, eval_batch_size=7, lr=1e-4, batch_scaling="weak", warmup_ratio=0.5)
    assert distributed.per_device_batches(weak, 3) == (8, 7)  # no need to divide
    assert distributed.learning_rate(weak, 1) == 1e-4
    assert distributed.learning_rate(weak, 4) == pytest.approx(2e-4)  # sqrt(4) x
    assert distributed.learning_rate(Train(lr=1e-4), 4) == 1e-4  # fixed: the one-process lr
    # the Trainer's arguments in one of 2 processes: its batch, the scaled lr, warmup over the fewer steps
    monkeypatch.setattr(trainers, "PartialState", lambda cpu: SimpleNamespace(num_processes=2))
    args = trainers.training_args(weak, str(tmp_path), n_train=64, bf16=False, seed=0)
    assert args.per_device_train_batch_size == 8 and args.learning_rate == pytest.approx(1e-4 * 2 ** 0.5)
    assert args.warmup_steps == 2  # half of 64 rows / (8 x 2) per step

def test_relaunch_under_accelerate_only_for_several_processes_not_yet_launched(monkeypatch):
    import accelerate.commands.launch

    calls = []
    monkeypatch.setattr(accelerate.commands.launch, "launch_command", calls.append)
    monkeypatch.setattr(sys, "argv", ["stages/train.py"])
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    distributed.relaunch(1)
    assert calls == []
    with pytest.raises(SystemExit, match="^0$"):  # the workers ran the script: the launcher is done
        distributed.relaunch(2)
    assert calls[0].training_script == "stages/train.py" and calls[0].num_processes == 2 and calls[0].multi_gpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match=r"train.num_processes 2: only 1 GPU\(s\) visible"):
        distributed.relaunch(2)
    monkeypatch.setenv("LOCAL_RANK", "0")  # a process the launcher started
    distributed.relaunch(2)
    assert len(calls) == 1


def test_a_workers_error_is_one_line_from_the_launcher(tiny_model, tmp_path):
    project = make_project(tmp_path / "project", tiny_model, num_processes=2, batch_size=7)
    done = subprocess.run([sys.executable, str(REPO / "stages" / "train.py")], cwd=project, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: train.batch_size 7 does not split evenly over 2 processes; use a multiple of 2"]
    assert errors[0] == done.stderr.strip().splitlines()[-1]
    assert not (project / "models").exists()
