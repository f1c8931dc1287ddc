"""`llmclf predict` and `llmclf export` on an adapter trained on the tiny Llama."""
import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from llmclf import cli
from llmclf.core.errors import UserError
from llmclf.evaluate import inference
from llmclf.model.adapter import load_adapter, save_adapter
from llmclf.model.loading import load_classifier
from llmclf.model.lora import add_lora
from llmclf.train import trainer as trainers
from tiny import CLASSES, Data, Inference, Lora, Model, Params, Quant, Train, build_tiny_llama, synthetic_texts


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    """A few steps of QLoRA on the tiny model, saved as the train stage saves it."""
    folder = tmp_path_factory.mktemp("adapter") / "adapter"
    p = Params(data=Data(classes=CLASSES), model=Model(name=str(tiny_model), max_length=64), quant=Quant(mode="nf4"),
               lora=Lora(target_modules="all-linear"),
               train=Train(lr=3e-3, epochs=2, gradient_checkpointing=False, eval_each_epoch=False))
    model, tok = load_classifier(p.model, p.quant, CLASSES, seed=0)
    model = add_lora(model, p.lora, quantized=True, gradient_checkpointing=False)
    texts, labels = synthetic_texts(16, seed=1)
    rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)
    args = trainers.training_args(p.train, str(folder.parent / "ckpt"), len(rows), bf16=False, seed=0)
    trainers.make_trainer(model, tok, p.train, rows, None, args, class_weights=None).train()
    save_adapter(model, tok, folder, p, {})
    return folder


def adapter_logits(adapter, texts):
    model, tok, _ = load_adapter(adapter)
    return inference.predict_logits(model, tok, texts, 8, 512)


def test_predict_csv_to_jsonl_keeps_ids_and_matches_the_adapter(adapter, tmp_path):
    texts, _ = synthetic_texts(3, seed=7)
    pd.DataFrame({"id": [f"n{i}" for i in range(len(texts))], "text": texts}).to_csv(tmp_path / "in.csv", index=False)
    cli.main(["predict", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.jsonl"), "--adapter", str(adapter)])
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"n{i}" for i in range(len(texts))]
    expected = np.array(CLASSES)[adapter_logits(adapter, texts).argmax(axis=1)]
    assert [r["label"] for r in rows] == list(expected)
    for r in rows:
        assert set(r["probs"]) == set(CLASSES) and sum(r["probs"].values()) == pytest.approx(1, abs=1e-3)
        assert r["probs"][r["label"]] == max(r["probs"].values())


def test_predict_stdin_lines_to_csv(adapter):
    texts, _ = synthetic_texts(2, seed=8)
    done = subprocess.run([sys.executable, "-m", "llmclf.cli", "predict", "--adapter", str(adapter), "--format", "csv"],
                          input="\n".join(texts) + "\n\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = pd.read_csv(pd.io.common.StringIO(done.stdout))
    assert list(out.columns) == ["id", "label", *[f"p_{c}" for c in CLASSES]]
    assert list(out["id"]) == list(range(len(texts)))  # the blank line is skipped
    assert set(out["label"]) <= set(CLASSES)


@pytest.mark.parametrize("content, message", [
    (b"", "no texts to classify"),
    (b"   \n\n", "no texts to classify"),
    (b"caf\xe9\n", "not UTF-8"),
])
def test_predict_bad_input(adapter, tmp_path, content, message):
    path = tmp_path / "in.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        cli.main(["predict", str(path), "--adapter", str(adapter)])


def test_predict_clear_errors(adapter, tmp_path):
    (tmp_path / "in.csv").write_text("body\nhello\n")
    with pytest.raises(UserError, match=r"no 'text' column .*--text-column"):
        cli.main(["predict", str(tmp_path / "in.csv"), "--adapter", str(adapter)])
    with pytest.raises(UserError, match="no such file"):
        cli.main(["predict", str(tmp_path / "missing.csv"), "--adapter", str(adapter)])
    (tmp_path / "ok.txt").write_text("hello\n")
    with pytest.raises(UserError, match="not a trained adapter folder"):
        cli.main(["predict", str(tmp_path / "ok.txt"), "--adapter", str(tmp_path)])
    other = build_tiny_llama(tmp_path / "other", hidden_size=32)
    with pytest.raises(UserError, match="trained on other base weights than those of"):
        cli.main(["predict", str(tmp_path / "ok.txt"), "--adapter", str(adapter), "--base", str(other)])


def test_stage_failure_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "in.txt").write_text("hello\n")
    done = subprocess.run([sys.executable, "-m", "llmclf.cli", "predict", str(tmp_path / "in.txt"),
                           "--adapter", str(tmp_path / "nowhere")], capture_output=True, text=True)
    last = done.stderr.strip().splitlines()[-1]  # bitsandbytes may log a line of its own first
    assert done.returncode == 2 and last.startswith("error: ") and "not a trained adapter folder" in last
    assert "Traceback" not in done.stderr


def test_export_is_a_standalone_bf16_model_predicting_as_the_adapter(adapter, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cli.main(["export", "--adapter", str(adapter), "-o", str(tmp_path / "merged")])
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged")
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert merged.dtype == torch.bfloat16 and getattr(merged.config, "quantization_config", None) is None
    assert merged.config.id2label == dict(enumerate(CLASSES))
    texts, _ = synthetic_texts(4, seed=11)
    reference = adapter_logits(adapter, texts)
    got = inference.predict_logits(merged, tok, texts, 8, 512)
    np.testing.assert_allclose(got, reference, atol=0.05 * np.abs(reference).max() + 0.02)
    assert (got.argmax(axis=1) == reference.argmax(axis=1)).mean() >= 0.9


def test_predict_applies_the_temperature_fitted_for_its_adapter(adapter, tmp_path, monkeypatch, capsys):
    from llmclf.evaluate import calibration

    texts, _ = synthetic_texts(2, seed=12)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    logits = adapter_logits(adapter, texts)

    def probs(*args):
        cli.main(["predict", "in.txt", "-o", "out.jsonl", "--adapter", str(adapter), *args])
        rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        return np.array([[r["probs"][c] for c in CLASSES] for r in rows]), capsys.readouterr().err

    monkeypatch.chdir(tmp_path)
    calibration.save_temperature(adapter, {"temperature": 3.0}, "models/calibration.json")  # the default place
    got, note = probs()
    np.testing.assert_allclose(got, calibration.probabilities(logits, 3.0), atol=2e-4)
    assert "T = 3.0 from models/calibration.json" in note
    got, note = probs("--no-calibration")
    np.testing.assert_allclose(got, calibration.probabilities(logits), atol=2e-4)
    assert np.abs(calibration.probabilities(logits, 3.0) - calibration.probabilities(logits)).max() > 0.01

    calibration.save_temperature(tmp_path, {"temperature": 3.0}, "models/calibration.json")  # another adapter's
    got, note = probs()
    np.testing.assert_allclose(got, calibration.probabilities(logits), atol=2e-4)
    assert "fitted for another adapter" in note
    with pytest.raises(UserError, match="fitted for another adapter"):
        probs("--calibration", "models/calibration.json")


# ---------------------------------------------------------------- bad inputs: one line, exit 2, nothing lost


def snapshot(folder) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def llmclf(*args, capsys) -> tuple[int, str]:
    """Exit status and the message, as the command line shows them (errors.install formats a UserError)."""
    try:
        cli.main([str(a) for a in args])
    except UserError as e:
        return 2, f"error: {e}"
    except SystemExit as e:
        return e.code, capsys.readouterr().err.strip()
    return 0, capsys.readouterr().err.strip()


@pytest.fixture
def workspace(adapter, tmp_path, monkeypatch):
    """An adapter under models/, a texts file and a folder of someone's files, as cwd."""
    import shutil

    shutil.copytree(adapter, tmp_path / "models" / "adapter")
    (tmp_path / "in.csv").write_text("id,text\n1,the match and the goal\n")
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine\n")
    (tmp_path / "file.txt").write_text("mine\n")
    (tmp_path / "model.txt").write_bytes(b"\x00\x01weights")
    pd.DataFrame({"text": ["the goal"]}).to_parquet(tmp_path / "pq.csv")
    pd.DataFrame({"text": [1, 2]}).to_parquet(tmp_path / "numbers.parquet")
    (tmp_path / "lists.jsonl").write_text('{"text": ["the", "goal"]}\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


BAD_COMMANDS = [
    # id, arguments, what the one line says
    ("predict-output-is-folder", ["predict", "in.csv", "-o", "kept"], "kept: is a folder; give the path of a file"),
    ("predict-output-is-models", ["predict", "in.csv", "-o", "models"], "models: is a folder"),
    ("predict-output-in-adapter", ["predict", "in.csv", "-o", "models/adapter/adapter_model.safetensors"],
     "would overwrite models/adapter, an input"),
    ("predict-output-is-input", ["predict", "in.csv", "-o", "in.csv"], "would overwrite in.csv, an input"),
    ("predict-input-is-folder", ["predict", "kept"], "kept: is a folder; give a CSV, JSONL, Parquet or plain-lines"),
    ("predict-input-missing", ["predict", "nope.csv"], "nope.csv: no such file"),
    ("predict-input-dev-null", ["predict", "/dev/null"], "/dev/null: no texts to classify"),
    ("batch-size-0", ["predict", "in.csv", "--batch-size", "0"], "argument --batch-size: 0 is less than 1"),
    ("batch-size-word", ["predict", "in.csv", "--batch-size", "x"], "argument --batch-size: 'x' is not a whole"),
    ("max-length-0", ["predict", "in.csv", "--max-length", "0"], "argument --max-length: 0 is less than 1"),
    ("max-batch-tokens-negative", ["predict", "in.csv", "--max-batch-tokens", "-1"], "-1 is less than 0"),
    ("unknown-option", ["predict", "in.csv", "--bach-size", "8"], "unrecognized arguments: --bach-size"),
    ("base-misspelled", ["predict", "in.csv", "--base", "smollm2-135m"], "did you mean 'smollm2-135m-instruct'?"),
    ("export-to-non-empty", ["export", "-o", "kept"], "kept: is not empty; give a new folder, or --force"),
    ("export-over-adapter", ["export", "-o", "models", "--force"], "models: holds models/adapter"),
    ("export-over-workdir", ["export", "-o", ".", "--force"], ".: holds"),
    ("export-into-adapter", ["export", "-o", "models/adapter/merged"], "lies inside the adapter"),
    ("export-to-file", ["export", "-o", "file.txt"], "file.txt: is a file"),
    ("report-to-folder", ["report", "-o", "kept"], "kept: is a folder"),
    ("predict-member-not-a-member", ["predict", "in.csv", "--member", "kept"], "kept: not an ensemble member"),
    ("member-save-uncalibrated", ["member", "save", "first"], "models/calibration.json: no such calibration file"),
    ("member-save-bad-name", ["member", "save", "../first"], "'../first': not a member name"),
    # the same file under another name; an output that is one of the command's inputs
    ("predict-output-is-input-aliased", ["predict", "in.csv", "-o", "kept/../in.csv"], "would overwrite in.csv, an input"),
    ("predict-output-is-calibration", ["predict", "in.csv", "-o", "models/calibration.json"],
     "would overwrite models/calibration.json, an input"),
    ("predict-output-is-given-calibration", ["predict", "in.csv", "--calibration", "cal.json", "-o", "./cal.json"],
     "would overwrite cal.json, an input"),
    ("predict-member-twice", ["predict", "in.csv", "--member", "m", "--member", "m"], "m: the same model as m"),
    ("predict-member-aliased", ["predict", "in.csv", "--member", "kept/m", "--member", "kept/../kept/m/"],
     "kept/../kept/m/: the same model as kept/m; give each model of the ensemble once"),
    ("predict-member-is-adapter", ["predict", "in.csv", "--adapter", "models/adapter", "--member", "models"],
     "models: the same model as models/adapter"),
    ("report-over-its-metrics", ["report", "-o", "metrics/eval.json"], "would overwrite metrics/eval.json, an input"),
    ("report-over-params", ["report", "-o", "./params.yaml"], "would overwrite params.yaml, an input"),
    ("report-over-lock", ["report", "-o", "metrics/../dvc.lock"], "would overwrite dvc.lock, an input"),
    # what the input file is
    ("predict-binary-input", ["predict", "model.txt"], "model.txt: not CSV, JSONL or plain-lines text (NUL bytes"),
    ("predict-parquet-named-csv", ["predict", "pq.csv"], "pq.csv: not CSV, JSONL or plain-lines text (NUL bytes: a "
     "binary file, or text in UTF-16); it is Parquet: name it .parquet"),
    ("predict-numbers-as-texts", ["predict", "numbers.parquet"], "numbers.parquet: column 'text' holds int64 values, not text"),
    ("predict-list-as-text", ["predict", "lists.jsonl"], "lists.jsonl: column 'text' holds list values, not text"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in BAD_COMMANDS], ids=[c[0] for c in BAD_COMMANDS])
def test_bad_command_is_one_line_and_changes_nothing(workspace, capsys, args, message):
    before = snapshot(workspace)
    code, err = llmclf(*args, capsys=capsys)
    assert code == 2 and err.startswith("error: ") and "\n" not in err and message in err, err
    assert snapshot(workspace) == before


CALIBRATION_FILES = [
    ("not-json", "T = 3\n", "JSONDecodeError"),
    ("a-list", "[3.0]\n", "TypeError"),
    ("no-temperature", '{"adapter_sha256": ""}\n', "KeyError: 'temperature'"),
    ("temperature-string", '{"temperature": "3", "adapter_sha256": ""}\n', "'3' is not a positive number"),
    ("temperature-zero", '{"temperature": 0, "adapter_sha256": ""}\n', "0 is not a positive number"),
    ("temperature-inf", '{"temperature": Infinity, "adapter_sha256": ""}\n', "inf is not a positive number"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in CALIBRATION_FILES], ids=[c[0] for c in CALIBRATION_FILES])
def test_broken_calibration_file_is_an_error(workspace, capsys, text, message):
    Path("cal.json").write_text(text)
    for extra in (["--calibration", "cal.json"], []):  # given, or found in the default place
        Path("models/calibration.json").write_text(text)
        code, err = llmclf("predict", "in.csv", "-o", "out.jsonl", *extra, capsys=capsys)
        assert code == 2 and "not a calibration file" in err and message in err and "--no-calibration" in err, err
        assert not Path("out.jsonl").exists()


def test_predict_never_writes_nan(workspace, capsys, monkeypatch):
    monkeypatch.setattr(inference, "predict_logits", lambda model, tok, texts, *a, **k: np.full((len(texts), 4), np.nan))
    code, err = llmclf("predict", "in.csv", "-o", "out.jsonl", capsys=capsys)
    assert code == 2 and "scores 1 of 1 texts as NaN or inf (first: id '1')" in err, err
    assert not Path("out.jsonl").exists()


def test_predict_writes_into_dev_null_and_skips_null_texts(workspace, capsys):
    Path("in.jsonl").write_text('{"id": "a", "text": null}\n{"id": "b", "text": "the goal"}\n')
    assert llmclf("predict", "in.jsonl", "-o", "/dev/null", capsys=capsys)[0] == 0
    assert Path("/dev/null").is_char_device()
    assert llmclf("predict", "in.jsonl", "-o", "out.jsonl", capsys=capsys)[0] == 0
    assert [json.loads(line)["id"] for line in Path("out.jsonl").read_text().splitlines()] == ["b"]


def test_predict_reads_a_json_array_and_parquet(workspace, capsys):
    Path("in.json").write_text('[{"id": "a", "text": "the goal"}, {"id": "b", "text": "the shares"}]')
    pd.DataFrame({"id": ["a", "b"], "text": ["the goal", "the shares"]}).to_parquet("in.parquet")
    for name in ("in.json", "in.parquet"):
        assert llmclf("predict", name, "-o", "out.jsonl", capsys=capsys)[0] == 0
        assert [json.loads(line)["id"] for line in Path("out.jsonl").read_text().splitlines()] == ["a", "b"]


def test_export_refuses_to_replace_the_base_model(workspace, capsys, tiny_model):
    before = snapshot(tiny_model)
    code, err = llmclf("export", "-o", tiny_model, "--force", capsys=capsys)
    assert code == 2 and f"{tiny_model}: holds {tiny_model}, which exporting would delete" in err, err
    code, err = llmclf("predict", "in.csv", "-o", tiny_model / "config.json", capsys=capsys)
    assert code == 2 and f"would overwrite {tiny_model}, an input" in err, err
    assert snapshot(tiny_model) == before


WRITES = [(["predict", "in.csv", "-o", "out.jsonl"], "out.jsonl"), (["member", "save", "m"], "models/members/m"),
          (["export", "-o", "merged"], "merged")]


@pytest.mark.parametrize("command, output, fault", [
    (*write, fault) for write in WRITES for fault in ("disk-full", "read-only", "permission")] + [
    (*WRITES[2], "safetensors")])
def test_a_full_disk_or_read_only_folder_is_one_line_and_changes_nothing(workspace, capsys, monkeypatch, command,
                                                                         output, fault):
    """The fault where each writer meets it: a folder that cannot be made (a full disk, denied access), a rename
    on a read-only file system, or the safetensors library's own error."""
    import errno
    import os
    import tempfile

    import transformers.modeling_utils
    from llmclf.evaluate import calibration

    calibration.save_temperature("models/adapter", {"temperature": 1.5}, "models/calibration.json")
    before = snapshot(workspace)
    code = {"disk-full": errno.ENOSPC, "read-only": errno.EROFS, "permission": errno.EACCES}.get(fault)

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), args[0] if fault == "read-only" else
                      os.path.join(kwargs["dir"], kwargs["prefix"] + "x1y2"))  # the temporary folder it would make

    def safetensors_fails(*args, **kwargs):  # as safetensors reports a full disk: no errno, no path
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    if fault == "safetensors":
        monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", safetensors_fails)
    else:
        monkeypatch.setattr(*((os, "replace") if fault == "read-only" else (tempfile, "mkdtemp")), fail)
    status, err = llmclf(*command, capsys=capsys)
    monkeypatch.undo()
    strerror = os.strerror(code or errno.ENOSPC)
    assert status == 2 and err.startswith(f"error: {output}: {strerror}; "), err
    assert snapshot(workspace) == before and not Path(output).exists()


def test_export_force_replaces_a_non_empty_folder(workspace, capsys):
    code, err = llmclf("export", "-o", "kept", "--force", capsys=capsys)
    assert code == 0 and (workspace / "kept" / "config.json").is_file() and not (workspace / "kept" / "notes.txt").exists()


# ---------------------------------------------------------------- ensembles: predict --member, member save/list


def member_of(adapter, folder, temperature, classes=None):
    """`adapter` as an ensemble member whose calibration.json holds `temperature` (other `classes`: its record edited)."""
    import shutil
    from llmclf.evaluate import calibration

    shutil.copytree(adapter, folder / "adapter")
    if classes:
        info = json.loads((folder / "adapter" / "llmclf.json").read_text())
        (folder / "adapter" / "llmclf.json").write_text(json.dumps(info | {"classes": classes}))
    calibration.save_temperature(folder / "adapter", {"temperature": temperature}, folder / "calibration.json")
    return folder


def parameter_count(adapter) -> int:
    from llmclf.evaluate import ensemble

    return ensemble.parameters(load_adapter(adapter)[0])


def test_predict_with_members_is_the_mean_of_calibrated_probabilities(adapter, tmp_path, monkeypatch, capsys):
    from llmclf.evaluate import calibration

    monkeypatch.chdir(tmp_path)  # no models/calibration.json: the adapter's own probabilities (T = 1)
    texts, _ = synthetic_texts(3, seed=13)
    Path("in.txt").write_text("\n".join(texts) + "\n")
    logits = adapter_logits(adapter, texts)

    def probs(*args):
        cli.main(["predict", "in.txt", "-o", "out.jsonl", "--adapter", str(adapter), *args])
        rows = [json.loads(line) for line in Path("out.jsonl").read_text().splitlines()]
        return np.array([[r["probs"][c] for c in CLASSES] for r in rows]), capsys.readouterr().err

    member_of(adapter, tmp_path / "hot", 3.0), member_of(adapter, tmp_path / "cold", 0.5)
    got, note = probs("--member", "hot", "--member", "cold")
    expected = (calibration.probabilities(logits) + calibration.probabilities(logits, 3.0)
                + calibration.probabilities(logits, 0.5)) / 3
    np.testing.assert_allclose(got, expected, atol=2e-4)
    assert np.abs(expected - calibration.probabilities(logits)).max() > 0.01  # the members' temperatures count
    assert f"an ensemble of 3 models, {3 * parameter_count(adapter):,} parameters" in note
    got, note = probs("--member", "hot", "--no-calibration")  # every model's own probabilities
    np.testing.assert_allclose(got, calibration.probabilities(logits), atol=2e-4)

    alone = (probs()[0], Path("out.jsonl").read_text())
    member_of(adapter, tmp_path / "same", 1.0)
    with_itself = (probs("--member", "same")[0], Path("out.jsonl").read_text())
    assert with_itself[1] == alone[1]  # a model averaged with itself is the model alone, to the byte

    member_of(adapter, tmp_path / "other", 1.0, classes=["Sports", "World", "Business", "Sci/Tech"])
    with pytest.raises(UserError, match=r"other: classes \['Sports'.* differ from the fine-tuned model's"):
        probs("--member", "same", "--member", "other")


def test_member_save_and_list(workspace, capsys):
    from llmclf.evaluate import calibration

    calibration.save_temperature("models/adapter", {"temperature": 1.5}, "models/calibration.json")
    code, err = llmclf("member", "save", "first", capsys=capsys)
    assert code == 0 and "dvc add models/members/first && git add models/members/first.dvc" in err, err
    assert "dvc exp apply EXP && dvc checkout && llmclf member save EXP" in err
    saved = workspace / "models" / "members" / "first"
    assert snapshot(saved / "adapter") == {saved / p.relative_to(workspace / "models") : b
                                           for p, b in snapshot(workspace / "models" / "adapter").items()}
    assert (saved / "calibration.json").read_bytes() == Path("models/calibration.json").read_bytes()
    code, err = llmclf("member", "save", "first", capsys=capsys)
    assert code == 2 and "models/members/first: exists; give another name, or --force" in err
    assert llmclf("member", "save", "first", "--force", capsys=capsys)[0] == 0

    cli.main(["member", "list"])
    lines = capsys.readouterr().out.splitlines()
    base = json.loads((saved / "adapter" / "llmclf.json").read_text())["model"]["name"]
    assert lines == ["name\tbase model\tparameters\tval temperature",
                     f"first\t{base}\t{parameter_count('models/adapter'):,}\t1.5"]


def test_evaluate_scores_the_ensemble_of_a_model_with_itself_as_the_model(adapter, tmp_path, monkeypatch):
    from llmclf.evaluate import calibration, ensemble, metrics

    monkeypatch.chdir(tmp_path)
    member_of(adapter, tmp_path / "models" / "members" / "self", 1.0)
    texts, labels = synthetic_texts(5, seed=14)
    frames = {"test": pd.DataFrame({"text": texts, "label": labels})}
    logits = {"test": adapter_logits(adapter, texts)}
    alone = metrics.evaluate(frames, logits, CLASSES).scores["test"]
    size = parameter_count(adapter)
    got = ensemble.evaluate(["models/members/self"], frames, {"test": calibration.probabilities(logits["test"])},
                            CLASSES, size, Inference(batch_size=8, dense=False))
    assert {k: got.record[k] for k in ("models", "parameters", "members")} == {
        "models": 2, "parameters": 2 * size, "members": ["self"]}
    assert got.record["test"]["accuracy"] == alone["accuracy"] and got.record["test"]["macro_f1"] == alone["macro_f1"]
    assert got.record["test"]["ece"] == pytest.approx(alone["ece"], abs=1e-3)
    assert list(got.evaluation.preds["test"]["pred"]) == list(logits["test"].argmax(axis=1))
