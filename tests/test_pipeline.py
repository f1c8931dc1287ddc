"""End to end: `dvc repro` of all six stages on real AG News rows and a tiny model, in a temporary
copy of the repo; a fresh clone restores the results from a DVC remote; experiments rerun exactly
the stages their params reach and travel through the git and DVC remotes."""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.e2e


FAKE_TOKEN = "hf_" + secrets.token_hex(16)  # planted in every command's environment; must reach no output
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def run(cmd: list[str], cwd: Path, capture: bool = True, **env: str) -> str:
    """`capture=False` for a command that leaves daemons behind (`dvc queue start`): they would inherit
    the output pipe and keep the call waiting for its end."""
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HF_TOKEN": FAKE_TOKEN} | env
    pipe = subprocess.PIPE if capture else subprocess.DEVNULL
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=pipe, stderr=pipe, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{(done.stdout or '')[-3000:]}\n{(done.stderr or '')[-3000:]}"
    return (done.stdout or "") + (done.stderr or "")


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def out_md5(lock: str, stage: str, path: str) -> str:
    """The hash dvc.lock (its text) records for one output of a stage."""
    return next(o["md5"] for o in yaml.safe_load(lock)["stages"][stage]["outs"] if o["path"] == path)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_model) -> Path:
    """A git + DVC copy of the project (its own AG News copy included) whose params name the tiny model."""
    dest = tmp_path_factory.mktemp("repo")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["sample"] |= {"train_per_class": 40, "test_per_class": 15, "val_per_class": 10}
    params["model"] |= {"name": str(tiny_model), "max_length": 64}
    params["lora"]["target_modules"] = "all-linear"
    params["train"] |= {"lr": 3e-3, "epochs": 2, "gradient_checkpointing": False, "logging_steps": 5}
    params["inference"] |= {"batch_size": 64}
    params["evaluate"] |= {"splits": ["test", "official_test"]}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run([*GIT, "commit", "-qam", "init", "--allow-empty"], dest)
    run(["git", "add", "-A"], dest)
    run([*GIT, "commit", "-qm", "project"], dest)
    return dest


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> SimpleNamespace:
    """Where the repo is shared: a DVC remote (a local folder), a bare git remote, and a teammate's clone."""
    root = tmp_path_factory.mktemp("shared")
    return SimpleNamespace(storage=root / "dvc-storage", origin=root / "origin.git", clone=root / "clone")


def adapter_logits(adapter: Path, texts: list[str]) -> np.ndarray:
    from llmclf.evaluate import inference
    from llmclf.model.adapter import load_adapter

    model, tok, _ = load_adapter(adapter)
    return inference.predict_logits(model, tok, texts, batch_size=64, max_length=64)


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
    baseline = json.loads((repo / "metrics" / "baseline.json").read_text())
    evaluation = json.loads((repo / "metrics" / "eval.json").read_text())
    assert list(baseline) == ["untrained_head", "tfidf_logreg", "zero_shot"]
    assert set(evaluation) == {"test", "official_test", "calibration"}
    for metrics in [*baseline.values(), evaluation]:
        for split in ("test", "official_test"):
            scores = metrics[split]
            assert 0 <= scores["accuracy"] <= 1 and "f1_sci_tech" in scores and 0 <= scores["ece"] <= 1
    # TF-IDF on 160 training rows already beats chance (0.25) on the 3,800 official test rows
    assert baseline["tfidf_logreg"]["official_test"]["accuracy"] > 0.4
    assert 0 <= evaluation["test"]["ece_calibrated"] <= 1
    temperature = evaluation["calibration"]["temperature"]
    assert temperature > 0 and evaluation["calibration"]["val_nll_calibrated"] <= evaluation["calibration"]["val_nll"]
    assert json.loads((repo / "models" / "calibration.json").read_text())["temperature"] == temperature
    assert (repo / "models" / "adapter" / "adapter_model.safetensors").is_file()
    for split in ("test", "official_test"):
        f1 = pd.read_csv(repo / "metrics" / "eval" / f"f1_{split}.csv")
        assert list(f1["model"].unique()) == ["untrained_head", "tfidf_logreg", "zero_shot", "fine_tuned"]
        assert len(f1) == 16 and f1["f1"].between(0, 1).all()
        for name in ("", "_calibrated"):
            bins = pd.read_csv(repo / "metrics" / "eval" / f"reliability_{split}{name}.csv")
            assert bins["count"].sum() == (60 if split == "test" else 3800)
    for png in ["train/training_curves.png", "eval/figures/confusion_test.png", "eval/figures/f1_test.png",
                "eval/figures/reliability_test.png", "eval/figures/confusion_official_test.png"]:
        assert (repo / "metrics" / png).read_bytes()[:4] == b"\x89PNG", png
    lock = (repo / "dvc.lock").read_text()

    # forced rerun on the CPU, same environment: every output the same bytes (data, adapter, metrics)
    forced = run(["dvc", "repro", "--force"], repo)
    assert stages_run(forced) == ["fetch", "sample", "split", "baseline", "train", "evaluate"]
    assert (repo / "dvc.lock").read_text() == lock

    again = run(["dvc", "repro"], repo)
    assert stages_run(again) == []
    assert "is up to date" in run(["dvc", "status"], repo) or "up to date" in again
    assert (repo / "dvc.lock").read_text() == lock
    run(["git", "add", "-A"], repo)
    run([*GIT, "commit", "-qm", "results"], repo)
    assert run(["git", "status", "--porcelain"], repo) == ""  # every output is committed or ignored


def test_a_fresh_clone_reproduces_the_committed_run(repo, tmp_path):
    """The README's front door: clone, `make repro` (its `dvc repro`), and the committed reference run
    comes back byte for byte; an experiment is then compared with it with no extra step."""
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], repo)
    out = run(["dvc", "repro"], clone)
    # the stages whose outputs DVC caches (data/, models/) rerun; baseline's outputs are all in git, and
    # the data it reads comes back with the same bytes, so DVC finds it up to date
    assert stages_run(out) == ["fetch", "sample", "split", "train", "evaluate"]
    assert run(["git", "status", "--porcelain"], clone) == ""  # dvc.lock and metrics/ as committed
    assert run(["dvc", "metrics", "diff"], clone).strip() == ""  # no change against HEAD

    out = run(["dvc", "exp", "run", "-n", "lora-r32", "-S", "lora.r=32"], clone)
    assert stages_run(out) == ["train", "evaluate"]
    diff = run(["dvc", "metrics", "diff", "--md"], clone)
    assert "train_loss" in diff and "metrics/eval.json" in diff
    shown = run(["dvc", "exp", "show", "--md", "--no-pager"], clone)
    assert "lora-r32" in shown and "lora.r" in shown
    assert "failed" not in run(["dvc", "plots", "diff", "HEAD", "-o", "plots_html"], clone).lower()
    assert (clone / "plots_html" / "index.html").is_file()
    run(["llmclf", "report", "--rev", "HEAD"], clone)
    report = (clone / "metrics" / "report.md").read_text()
    assert "| lora.r" in report and "| 16 " in report and "| 32 " in report


def test_a_fresh_clone_pulls_data_and_adapter_from_the_dvc_remote(repo, shared):
    """The README's round trip: metrics travel with git, data/ and models/adapter/ through the DVC remote."""
    run(["dvc", "remote", "add", "-d", "storage", str(shared.storage)], repo)
    run([*GIT, "commit", "-qm", "DVC remote", ".dvc/config"], repo)
    run(["dvc", "push"], repo)
    run(["git", "init", "-q", "--bare", str(shared.origin)], repo)
    run(["git", "remote", "add", "origin", str(shared.origin)], repo)
    run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], repo)
    clone = shared.clone
    run(["git", "clone", "-q", "-b", "main", str(shared.origin), str(clone)], repo)

    assert not (clone / "data" / "splits").exists() and not (clone / "models" / "adapter").exists()
    metrics = run(["dvc", "metrics", "show", "--json"], clone)  # no download needed
    assert "balanced_accuracy" in metrics and metrics == run(["dvc", "metrics", "show", "--json"], repo)

    run(["dvc", "pull"], clone)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], clone)
    assert stages_run(run(["dvc", "repro"], clone)) == []
    assert run(["git", "status", "--porcelain"], clone) == ""  # dvc.lock and metrics untouched

    texts = pd.read_parquet(clone / "data" / "splits" / "test.parquet")["text"].tolist()
    original, restored = (adapter_logits(r / "models" / "adapter", texts) for r in (repo, clone))
    assert original.shape == (60, 4) and np.array_equal(original, restored)


def test_queued_experiments_run_two_at_a_time(repo):
    """Two queued experiments, run at once by two queue workers in copies under .dvc/tmp/exps (params.yaml
    holds absolute paths to the data and the tiny model, so they resolve there too): each reruns train and
    evaluate only, from the committed pipeline's cache, and ends with metrics."""
    for r in (4, 32):  # values no other test runs: the run cache would skip the training of one it ran
        run(["dvc", "exp", "run", "--queue", "-S", f"lora.r={r}"], repo)
    try:
        run(["dvc", "queue", "start", "-j", "2"], repo, capture=False, OMP_NUM_THREADS="1")  # two at once on 2 cores: a thread each
        deadline = time.monotonic() + 600
        while re.search(r"\b(Queued|Running)\b", run(["dvc", "queue", "status"], repo)):
            assert time.monotonic() < deadline, "the queued experiments did not finish within 10 minutes"
            time.sleep(2)
    finally:
        run(["dvc", "queue", "stop", "--kill"], repo)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    exps = {e["revs"][0]["data"]["params"]["params.yaml"]["data"]["lora"]["r"]: e
            for rev in shown for e in rev.get("experiments") or []}
    assert set(exps) == {4, 32}, exps.keys()
    for r, exp in exps.items():
        assert exp["executor"]["state"] == "success", (r, exp["executor"])
        assert stages_run(Path(exp["executor"]["local"]["log"]).read_text()) == ["train", "evaluate"]
        metrics = exp["revs"][0]["data"]["metrics"]
        assert 0 <= metrics["metrics/eval.json"]["data"]["test"]["accuracy"] <= 1
        assert metrics["metrics/train.json"]["data"]["processes"] == 1
    assert run(["git", "status", "--porcelain"], repo) == ""  # the workspace is left as it was


def test_plots_render_to_html(repo):
    out = run(["dvc", "plots", "show", "-o", "plots_html"], repo)
    assert "failed to load" not in out and "WARNING" not in out and "ERROR" not in out, out
    html = (repo / "plots_html" / "index.html").read_text()
    for name in ("confusion_test", "f1_test", "reliability_test", "metrics/train/plots/metrics", "training_curves.png",
                 "confusion_test.png", "f1_test.png", "reliability_test.png",  # and every other split's figures
                 "confusion_official_test.png", "f1_official_test.png", "reliability_official_test.png"):
        assert name in html, name
    assert '"yOffset": {"field": "model"' in html  # the grouped-bars template of .dvc/plots


def test_experiments_rerun_only_the_stages_their_params_reach(repo):
    out = run(["dvc", "exp", "run", "-n", "lora-r8", "-S", "lora.r=8"], repo)
    assert stages_run(out) == ["train", "evaluate"]
    diff = run(["dvc", "metrics", "diff", "--all"], repo)
    assert "test.accuracy" in diff and "test.balanced_accuracy" in diff and "train_loss" in diff
    shown = run(["dvc", "exp", "show", "--no-pager", "--md"], repo)
    assert "test.accuracy" in shown and "lora.r" in shown

    out = run(["dvc", "exp", "run", "-S", "evaluate.temperature_scaling=false"], repo)
    assert stages_run(out) == ["evaluate"]  # the baseline stage does not read it
    evaluation = json.loads((repo / "metrics" / "eval.json").read_text())
    assert "calibration" not in evaluation and "ece_calibrated" not in evaluation["test"]
    assert json.loads((repo / "models" / "calibration.json").read_text())["temperature"] == 1.0

    out = run(["dvc", "exp", "run", "-S", "sample.train_per_class=30", "split"], repo)
    assert stages_run(out) == ["sample", "split"]
    counts = pd.read_parquet(repo / "data" / "splits" / "train.parquet")["label"].value_counts()
    assert counts.to_dict() == {0: 30, 1: 30, 2: 30, 3: 30}


def test_experiments_are_shared_through_the_git_and_dvc_remotes(repo, shared):
    run(["dvc", "exp", "push", "origin", "lora-r8"], repo)
    clone = shared.clone
    run(["dvc", "exp", "pull", "origin", "lora-r8"], clone)
    def shown(where: Path) -> dict:  # lora-r8's params and metrics as `dvc exp show` has them
        rows = json.loads(run(["dvc", "exp", "show", "--json"], where))
        exp = next(e for row in rows for ex in row.get("experiments") or [] for e in ex["revs"]
                   if e.get("name") == "lora-r8")
        return {k: exp["data"][k] for k in ("params", "metrics")}

    assert shown(clone) == shown(repo)  # the same params and metrics

    head_lock = (clone / "dvc.lock").read_text()
    run(["dvc", "exp", "apply", "lora-r8"], clone)
    assert yaml.safe_load((clone / "params.yaml").read_text())["lora"]["r"] == 8
    exp_lock = (clone / "dvc.lock").read_text()
    assert out_md5(exp_lock, "train", "models/adapter") != out_md5(head_lock, "train", "models/adapter")
    assert "Data and pipelines are up to date." in run(["dvc", "status"], clone)  # its adapter came with it


def test_predict_export_and_report_on_the_pipeline_outputs(repo):
    (repo / "news.txt").write_text("Stocks rallied as the merger lifted profit forecasts\nThe striker scored twice\n")
    out = run(["llmclf", "predict", "news.txt", "-o", "predictions.jsonl"], repo)
    assert "from models/calibration.json" in out  # the evaluate stage's temperature for this adapter
    rows = [json.loads(line) for line in (repo / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1] and all(r["label"] in r["probs"] for r in rows)

    run(["llmclf", "export", "-o", "models/merged"], repo)
    assert (repo / "models" / "merged" / "config.json").is_file()

    run(["llmclf", "report", "--rev", "HEAD"], repo)
    report = (repo / "metrics" / "report.md").read_text()
    assert "## Metrics" in report and "test.accuracy" in report  # lora.r=8 changed the metrics
    assert "| lora.r" in report and "| 16 " in report and "| 8 " in report
    assert re.search(r"\| test \| sports \| [0-9.]+ \| [0-9.]+ \| [+-][0-9.]+ \|", report)
    assert "![confusion_test](eval/figures/confusion_test.png)" in report


def train_until_a_checkpoint(repo: Path, *args: str) -> tuple[subprocess.Popen, list]:
    """`dvc repro train` started, once training has written a checkpoint: dvc and its training processes."""
    import psutil

    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HF_TOKEN": FAKE_TOKEN}
    dvc = subprocess.Popen(["dvc", "repro", *args, "train"], cwd=repo, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    checkpoints = repo / ".checkpoints" / "train"
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("checkpoint-*/trainer_state.json")) and time.monotonic() < deadline \
            and dvc.poll() is None:
        time.sleep(0.02)
    trainers = [c for c in psutil.Process(dvc.pid).children(recursive=True) if "stages/train.py" in " ".join(c.cmdline())]
    assert trainers and dvc.poll() is None, "training ended before a checkpoint could be interrupted"
    return dvc, trainers


def test_training_killed_midway_resumes_on_the_next_repro(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"] |= {"epochs": 12, "checkpoint_steps": 4}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc, trainers = train_until_a_checkpoint(repo)
    checkpoints = repo / ".checkpoints" / "train"
    for proc in trainers:
        proc.kill()  # SIGKILL: no clean-up code runs
    assert dvc.wait(timeout=60) != 0
    assert any(checkpoints.glob("checkpoint-*"))

    out = run(["dvc", "repro", "train"], repo)
    assert "resuming from the last checkpoint" in out and stages_run(out) == ["train"]
    assert json.loads((repo / "logs" / "train.json").read_text())["resumed"] is True  # timings of the run
    assert not checkpoints.exists()  # removed after the successful run
    resumed = curves(repo)
    assert "resuming" not in run(["dvc", "repro", "-f", "train"], repo)  # a finished run starts afresh
    assert resumed == curves(repo)  # DVCLive's curves of the whole run, the steps before the kill included


def curves(repo: Path) -> dict:
    files = [*(repo / "metrics" / "train").rglob("*.tsv"), repo / "metrics" / "train" / "metrics.json"]
    return {f.relative_to(repo): f.read_text() for f in files}


def outputs(repo: Path) -> dict:
    """Every output DVC would delete before running a stage: the adapter, the temperature, the metrics."""
    files = [repo / "dvc.lock", repo / "models" / "calibration.json",
             *(repo / "models" / "adapter").rglob("*"), *(repo / "metrics").rglob("*")]
    return {f: f.read_bytes() for f in files if f.is_file()}


def test_bad_params_and_a_second_run_leave_every_output_untouched(repo):
    from llmclf.core import stagelock

    before, text = outputs(repo), (repo / "params.yaml").read_text()
    params = yaml.safe_load(text)
    params["train"]["lr"] = float("inf")  # a typo's worth: DVC starts the stage, params.load stops it
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stdout + done.stderr
    assert re.search(r"(?m)^error: params.yaml: invalid params\n\s+train.lr: Input should be a finite number",
                     done.stdout + done.stderr)
    (repo / "params.yaml").write_text(text)

    fd = stagelock.hold_lock(repo / ".checkpoints" / "train.lock", "a test")  # as a training run would
    try:
        done = subprocess.run(["dvc", "repro", "-f", "train"], cwd=repo, env=env, capture_output=True, text=True)
    finally:
        os.close(fd)
    assert done.returncode != 0 and "Traceback" not in done.stdout + done.stderr
    assert f"error: training is already running (pid {os.getpid()}" in done.stdout + done.stderr
    assert outputs(repo) == before


def test_a_killed_dvc_leaves_no_trainer_running_and_no_output_lost(repo):
    import psutil

    before = outputs(repo)
    dvc, trainers = train_until_a_checkpoint(repo, "-f")
    dvc.kill()  # SIGKILL: dvc cannot stop its stage; the kernel's parent-death signal does
    dvc.wait()  # reaped: until then the killed dvc still holds its lock on the outputs
    _, alive = psutil.wait_procs(trainers, timeout=30)
    assert alive == []
    log = dvc.stdout.read()  # the trainer wrote its last line into the pipe it shared with dvc
    assert re.search(r"(?m)^error: interrupted \(SIGTERM\): the train stage.*dvc repro", log), log[-2000:]
    assert "Traceback" not in log
    assert outputs(repo) == before
    shutil.rmtree(repo / ".checkpoints" / "train")


def test_no_output_holds_the_hub_token(repo):
    """Every stage and command above ran with HF_TOKEN set; no file they wrote may contain it."""
    leaks = [str(f.relative_to(repo)) for f in repo.rglob("*")
             if f.is_file() and ".git" not in f.parts and FAKE_TOKEN.encode() in f.read_bytes()]
    assert leaks == []


def test_sweep_runs_are_imported_as_dvc_experiments(repo, tmp_path):
    """offline/sweep.py (the GPU machine's runner, no DVC there) then offline/import_runs.py here: each run
    becomes a `dvc exp show` row with the run's own metrics; a re-evaluation reuses its base's adapter."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("set: ['train.epochs=1']\nexperiments:\n  tiny-r4: ['lora.r=4']\n")
    work = tmp_path / "work"
    sweep = [sys.executable, "offline/sweep.py", "--plan", str(plan), "--work", str(work), "--jobs", "1"]
    assert "tiny-r4: test" in run(sweep, repo)
    out = run([*sweep, "--set", "evaluate.splits=[val]", "--suffix=-val"], repo)
    assert "tiny-r4-val: val" in out
    manifest = json.loads((work / "tiny-r4-val" / "manifest.json").read_text())
    assert manifest["ran"] == ["baseline", "evaluate"] and manifest["base"] == "tiny-r4"
    with tarfile.open(work / "out" / "tiny-r4-val.tgz") as tar:
        assert not any(n.startswith("models/adapter") for n in tar.getnames())  # its base's is reused

    run(["git", "reset", "-q", "--hard"], repo)  # experiments run in the workspace by earlier tests changed it
    before = (repo / "params.yaml").read_text()
    run([sys.executable, "offline/import_runs.py", str(work / "out")], repo)
    assert (repo / "params.yaml").read_text() == before  # the workspace is given back
    exps = {e["name"]: e for row in json.loads(run(["dvc", "exp", "show", "--json"], repo))
            for e in [row] + [x for ex in row.get("experiments") or [] for x in ex["revs"]]
            if e.get("name")}
    for name, splits in (("tiny-r4", {"test", "official_test"}), ("tiny-r4-val", {"val"})):
        data = exps[name]["data"]
        assert data["params"]["params.yaml"]["data"]["lora"]["r"] == 4
        ours = data["metrics"]["metrics/eval.json"]["data"]
        theirs = json.loads((work / name / "metrics" / "eval.json").read_text())
        assert set(ours) & {"test", "val", "official_test"} == splits
        assert all(ours[s]["accuracy"] == theirs[s]["accuracy"] for s in splits)


def test_sweep_refuses_a_model_missing_from_the_cache(tmp_path, monkeypatch):
    """Without network, an offline alias missing from LLMCLF_CACHE would fail its run in the baseline stage,
    after the data stages: offline/sweep.py stops before any run, naming the runs, the models and the fix.
    Hub ids and local folders are not checked."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("presets: [accurate]\nexperiments:\n  smol: []\n"
                    "  minilm: [model.name=all-minilm-l6-v2, quant.mode=none]\n"
                    "  mpnet: [model.name=all-mpnet-base-v2, quant.mode=none, model.attn_implementation=eager]\n"
                    "  hub: [model.name=HuggingFaceTB/SmolLM2-135M]\n  local: [model.name=/models/mine]\n")
    cache, work = tmp_path / "cache", tmp_path / "work"
    sweep = [sys.executable, "offline/sweep.py", "--plan", str(plan), "--work", str(work)]
    done = subprocess.run(sweep, cwd=REPO, env=os.environ | {"LLMCLF_CACHE": str(cache)},
                          capture_output=True, text=True)
    assert done.returncode == 1 and not work.exists()  # no experiment folder, nothing ran
    assert done.stderr == (f"error: base models not in {cache}: smol (smollm2-135m-instruct), "
                           "minilm (all-minilm-l6-v2), mpnet (all-mpnet-base-v2); on the machine with network run "
                           'MODELS="smollm2-135m-instruct all-minilm-l6-v2 all-mpnet-base-v2" bash offline/prepare.sh, '
                           "then send the pieces again\n")

    monkeypatch.syspath_prepend(REPO / "offline")
    import sweep as sweep_py
    from llmclf.model import basemodel

    monkeypatch.setenv("LLMCLF_CACHE", str(cache))
    basemodel.gguf_path("smollm2-135m-instruct").parent.mkdir(parents=True)
    basemodel.gguf_path("smollm2-135m-instruct").touch()  # as the bundle holds it: the GGUF, converted on first use
    loaded = sweep_py.load_plan(plan)
    sweep_py.check_models(loaded, ["smol", "hub", "local"], [])
    with pytest.raises(SystemExit, match=r"not in .*: minilm \(all-minilm-l6-v2\);"):
        sweep_py.check_models(loaded, ["smol", "minilm"], [])
    basemodel.hf_path("all-minilm-l6-v2").mkdir(parents=True)  # a model folder, as unpacked
    with pytest.raises(SystemExit, match=r"not in .*: mpnet \(all-mpnet-base-v2\);"):
        sweep_py.check_models(loaded, list(loaded["experiments"]), [])
    basemodel.hf_path("all-mpnet-base-v2").mkdir(parents=True)
    sweep_py.check_models(loaded, list(loaded["experiments"]), [])


def without_git(tmp_path: Path) -> str:
    """A PATH with the venv's bin and every other command but git: the GPU host may have none."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if not tool.name.startswith("git") and not (tools / tool.name).exists():
                (tools / tool.name).symlink_to(tool)
    return f"{Path(sys.executable).parent}:{tools}"


def test_queued_experiments_come_back_from_a_gpu_host_through_dvc(repo, tmp_path):
    """offline/run.sh on a host without git: DVC's queue runs two experiments at once, `push` packs them (git
    commits and outputs, as `dvc exp push` sends them) in pieces; offline/pull.sh brings them into the
    checkout they came from as DVC experiments with the host's params and metrics and the same adapter."""
    host = tmp_path / "host"
    run(["git", "clone", "-q", str(repo), str(host)], repo)  # the checkout, as copied to the host
    gpu = {"LLMCLF_GPU": str(tmp_path / "gpu"), "PATH": without_git(tmp_path)}

    def on_host(*args: str, **env: str) -> str:
        return run(["bash", "offline/run.sh", *args], host, **gpu, **env)

    for name, r in (("host-r4", 4), ("host-r8", 8)):  # names no other test gives an experiment
        on_host("dvc", "exp", "run", "--queue", "-n", name, "-S", "train.epochs=1", "-S", f"lora.r={r}",
                "-S", "baseline.zero_shot=false")
    try:
        run(["bash", "offline/run.sh", "dvc", "queue", "start", "-j", "2"], host, capture=False, OMP_NUM_THREADS="1", **gpu)
        deadline = time.monotonic() + 600
        while re.search(r"\b(Queued|Running)\b", status := on_host("dvc", "queue", "status")):
            assert time.monotonic() < deadline, "the queued experiments did not finish within 10 minutes"
            time.sleep(3)
    finally:
        on_host("dvc", "queue", "stop", "--kill")
    assert status.count("Success") == 2, status

    def shown(out: str) -> dict:  # name: params and metrics, as `dvc exp show --json` has them
        return {e["name"]: {k: e["data"][k] for k in ("params", "metrics")}
                for row in json.loads(out) for ex in row.get("experiments") or [] for e in ex["revs"]}

    theirs = shown(on_host("dvc", "exp", "show", "--json"))
    assert set(theirs) == {"host-r4", "host-r8"}
    assert theirs["host-r8"]["params"]["params.yaml"]["data"]["lora"]["r"] == 8
    back = tmp_path / "back"
    on_host("push", str(back), "--piece-size", "1M")
    assert len(list(back.glob("exps.tar.*"))) > 1

    run(["bash", "offline/pull.sh", str(back)], repo, PY=sys.executable)
    ours = shown(run(["dvc", "exp", "show", "--json"], repo))
    assert {n: ours[n] for n in theirs} == theirs
    assert 0 <= ours["host-r4"]["metrics"]["metrics/eval.json"]["data"]["test"]["accuracy"] <= 1
    assert "offline" not in run(["dvc", "remote", "list"], repo)  # the pack's remote is gone with the pack

    adapter = Path("models/adapter/adapter_model.safetensors")
    run(["dvc", "exp", "apply", "host-r8"], repo)
    on_host("dvc", "exp", "apply", "host-r8")
    assert (repo / adapter).read_bytes() == (host / adapter).read_bytes()
    assert yaml.safe_load((repo / "params.yaml").read_text())["lora"]["r"] == 8


def test_parallel_bench_compares_queued_experiments_at_once_with_one_alone(repo, tmp_path):
    """bench/parallel.py through DVC's queue: the first experiment fills DVC's run cache, the second runs
    alone, the next two at once by two workers, each of those running the same stages;
    experiments per hour of each phase from its wall time, every run's metrics beside it (no GPU: nothing
    is claimed), and the runs stay as DVC experiments of the checkout."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("presets: [tutorial]\n"
                    "set: ['sample.train_per_class=20', 'sample.val_per_class=5', 'sample.test_per_class=5', "
                    "'baseline.zero_shot=false', 'evaluate.splits=[val]', 'train.optimizer=adamw_torch']\n"
                    "experiments:\n  par-w: []\n  par-a: ['train.lr=2e-4']\n  par-b: ['lora.r=4']\n  par-c: ['train.lr=1e-3']\n")
    out = tmp_path / "parallel.json"
    try:
        run([sys.executable, "bench/parallel.py", "--plan", str(plan), "--together", "2", "--poll", "1",
             "--out", str(out)], repo, OMP_NUM_THREADS="1")
    finally:
        run(["dvc", "queue", "stop", "--kill"], repo)
    result = json.loads(out.read_text())
    assert result["first"]["experiments"] == ["par-w"] and result["alone"]["experiments"] == ["par-a"]
    assert result["together"]["experiments"] == ["par-b", "par-c"]
    # the first runs the data stages its params change, then baseline, train and evaluate; the others find
    # fetch, sample and split in DVC's run cache and rerun baseline (its metrics are git-tracked, cache:
    # false: the run cache cannot restore them), train and evaluate
    assert result["first"]["runs"]["par-w"]["stages_run"][-3:] == ["baseline", "train", "evaluate"]
    assert all(r["stages_run"] == ["baseline", "train", "evaluate"] for p in ("alone", "together") for r in result[p]["runs"].values())
    for phase in ("first", "alone", "together"):
        p = result[phase]
        assert p["experiments_per_hour"] == round(3600 * len(p["experiments"]) / p["wall_seconds"], 1)
        assert all(r["gpus_claimed"] == [] and set(r["accuracy"]) == {"val"} for r in p["runs"].values())
    assert result["speedup"] == round(result["together"]["experiments_per_hour"] / result["alone"]["experiments_per_hour"], 2)
    assert result["together"]["runs"]["par-b"]["overrides"][-1] == "lora.r=4"
    shown = {e["name"]: e["data"]["params"]["params.yaml"]["data"] for row in json.loads(run(["dvc", "exp", "show", "--json"], repo))
             for ex in row.get("experiments") or [] for e in ex["revs"]}
    assert shown["par-b"]["lora"]["r"] == 4 and shown["par-c"]["train"]["lr"] == 1e-3
    assert shown["par-a"]["train"]["gradient_checkpointing"] is True  # the tutorial preset's, as -S overrides
    assert shown["par-a"]["train"]["optimizer"] == "adamw_torch"  # -S without Hydra's `+`: params.yaml lists every key


def test_a_teacher_is_a_dep_of_train_which_distills_it(repo):
    """docs/accuracy.md's distillation flow: the trained model saved as a teacher and tracked with `dvc add`,
    then an experiment naming it in train.teachers reruns train (which learns from its probabilities) and
    evaluate, and records the teacher; a changed teacher reruns train again. The workspace is put back."""
    run(["dvc", "repro"], repo)
    before = repo.parent / f"{repo.name}-before-distillation"  # what git holds of the workspace's run
    shutil.copytree(repo / "metrics", before / "metrics", dirs_exist_ok=True)
    saved = {f: (repo / f).read_bytes() for f in ("params.yaml", "dvc.lock", "models/calibration.json")}
    teacher = repo / "models" / "teachers" / "tutor"
    try:
        out = run(["llmclf", "member", "save", "tutor", "--teacher"], repo)
        assert "dvc add models/teachers/tutor" in out and "train.teachers=[models/teachers/tutor]" in out
        run(["dvc", "add", "models/teachers/tutor"], repo)
        out = run(["dvc", "exp", "run", "-n", "distilled", "-S", "train.teachers=[models/teachers/tutor]",
                   "-S", "train.distill_alpha=0.7"], repo)
        assert stages_run(out) == ["train", "evaluate"]
        assert re.search(r"soft labels from teachers tutor \([\d,]+ parameters\), 70% of the loss; their accuracy "
                         r"on the training rows [01]\.\d{4}", out), out
        summary = json.loads((repo / "metrics" / "train.json").read_text())
        assert summary["teachers"] == ["tutor"] and summary["teacher_parameters"] > 0
        calibration = teacher / "calibration.json"
        calibration.write_text(calibration.read_text().replace('"temperature": ', '"temperature": 1e-9 + '))
        assert "models/teachers" in run(["dvc", "status", "train"], repo)
    finally:
        shutil.rmtree(teacher, ignore_errors=True)
        for f in ("tutor.dvc", ".gitignore"):
            (teacher.parent / f).unlink(missing_ok=True)
        for f, content in saved.items():
            (repo / f).write_bytes(content)
        shutil.rmtree(repo / "metrics")
        shutil.copytree(before / "metrics", repo / "metrics")
        run(["dvc", "checkout", "--force"], repo)  # the cached outputs (models/adapter) as dvc.lock has them
    assert run(["dvc", "status"], repo).strip() == "Data and pipelines are up to date."


def test_an_ensemble_member_is_a_dep_of_evaluate_and_is_scored(repo):
    """docs/accuracy.md's flow: the trained model saved as a member and tracked with `dvc add`, then an
    experiment naming it in evaluate.members reruns only evaluate, which scores the ensemble (here the
    model with itself: as the model alone); a changed member reruns evaluate again."""
    run(["dvc", "repro"], repo)  # the pipeline's outputs in the workspace, as dvc.lock records them
    out = run(["llmclf", "member", "save", "self"], repo)
    assert "dvc add models/members/self" in out
    run(["dvc", "add", "models/members/self"], repo)
    run(["git", "add", "models/members/self.dvc", "models/members/.gitignore"], repo)
    out = run(["dvc", "exp", "run", "-n", "with-self", "-S", "evaluate.members=[models/members/self]"], repo)
    assert stages_run(out) == ["evaluate"]
    evaluation = json.loads((repo / "metrics" / "eval.json").read_text())
    ensemble = evaluation["ensemble"]
    assert ensemble["models"] == 2 and ensemble["members"] == ["self"] and ensemble["parameters"] > 0
    for split in ("test", "official_test"):
        assert ensemble[split]["accuracy"] == evaluation[split]["accuracy"]
        f1 = pd.read_csv(repo / "metrics" / "eval" / f"f1_{split}.csv")
        assert list(f1["model"].unique())[-2:] == ["fine_tuned", "ensemble"]
    assert "ensemble.test.accuracy" in run(["dvc", "metrics", "show"], repo)

    calibration = repo / "models" / "members" / "self" / "calibration.json"
    calibration.write_text(calibration.read_text().replace('"temperature": ', '"temperature": 1e-9 + '))
    assert "models/members" in run(["dvc", "status", "evaluate"], repo)  # the edit (a broken file) is seen
