"""Ensembles (llmclf/evaluate/ensemble.py): the averaging, the parameter count, member folders and their checks.
Predicting and scoring with real members: tests/test_cli.py; in the pipeline: tests/test_pipeline.py."""
import json

import numpy as np
import pytest

from llmclf.core.errors import UserError
from llmclf.core.hashing import sha256
from llmclf.evaluate import calibration, ensemble
from tiny import CLASSES, Inference, Lora, Model, Quant, params_with


def test_mean_of_calibrated_probabilities_by_hand():
    a, b = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 0.0], [3.0, 0.0]])
    got = ensemble.mean_probabilities([calibration.probabilities(a, 2.0), calibration.probabilities(b, 1.0)])
    # softmax([1, 0]) = [e/(e+1), 1/(e+1)]; softmax([0, .5]); softmax([0, 0]); softmax([3, 0])
    e, h = np.e, np.exp(0.5)
    expected = np.array([[(e / (e + 1) + 0.5) / 2, (1 / (e + 1) + 0.5) / 2],
                         [(1 / (1 + h) + e**3 / (e**3 + 1)) / 2, (h / (1 + h) + 1 / (e**3 + 1)) / 2]])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    one = calibration.probabilities(a, 2.0)
    np.testing.assert_array_equal(ensemble.mean_probabilities([one, one]), one)  # a model with itself: itself


@pytest.mark.parametrize("quant", ["none", "nf4"])
def test_parameters_are_base_lora_and_head(tiny_model, quant):
    """As sum(p.numel()) of the unquantized base with its head, plus the LoRA weights: a 4-bit weight
    counts its values, not its packed bytes, and peft's frozen copy of the head is not counted."""
    from llmclf.model.loading import load_classifier
    from llmclf.model.lora import add_lora

    model = Model(name=str(tiny_model), max_length=64)
    plain, _ = load_classifier(model, Quant(mode="none"), CLASSES)
    base = sum(p.numel() for p in plain.parameters())
    loaded, _ = load_classifier(model, Quant(mode=quant), CLASSES)
    peft = add_lora(loaded, Lora(target_modules="all-linear"), quantized=quant != "none", gradient_checkpointing=False)
    lora = sum(p.numel() for n, p in peft.named_parameters() if "lora_" in n)
    assert lora > 0 and ensemble.parameters(peft) == base + lora
    if quant == "nf4":  # the packed storage holds half as many elements: counting it would undercount
        assert sum(p.numel() for p in peft.parameters()) < base


def fake_member(folder, classes=CLASSES, temperature=2.0):
    """A member folder as `llmclf member save` writes it, without a model behind it: what the checks read."""
    adapter = folder / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(folder.name.encode())
    (adapter / "llmclf.json").write_text(json.dumps({
        "model": Model(name="smollm2-135m-instruct").model_dump(), "classes": classes,
        "adapter_sha256": sha256(adapter / "adapter_model.safetensors"), "base_sha256": ""}))
    calibration.save_temperature(adapter, {"temperature": temperature}, folder / "calibration.json")
    return folder


def test_members_are_checked_before_loading(tmp_path):
    good = ensemble.members([fake_member(tmp_path / "a")], CLASSES)
    assert [(m.name, m.temperature, m.base, m.max_length) for m in good] == [("a", 2.0, "smollm2-135m-instruct", 512)]
    other = fake_member(tmp_path / "b", classes=["Sports", "World", "Business", "Sci/Tech"])
    with pytest.raises(UserError, match=r"b: classes \['Sports', 'World'.* differ from the fine-tuned model's"):
        ensemble.members([tmp_path / "a", other], CLASSES)
    with pytest.raises(UserError, match="not an ensemble member"):
        ensemble.members([tmp_path], CLASSES)
    (tmp_path / "a" / "calibration.json").unlink()
    with pytest.raises(UserError, match="no such calibration file"):
        ensemble.members([tmp_path / "a"], CLASSES)
    calibration.save_temperature(tmp_path / "b" / "adapter", {"temperature": 1.5}, tmp_path / "a" / "calibration.json")
    with pytest.raises(UserError, match="fitted for another adapter"):
        ensemble.members([tmp_path / "a"], CLASSES)


def test_save_copies_adapter_and_calibration_once(tmp_path):
    source = fake_member(tmp_path / "trained")
    root = tmp_path / "members"
    saved = ensemble.save("r64", source / "adapter", source / "calibration.json", root=root)
    assert saved == root / "r64" and ensemble.saved(root) == [saved]
    assert ensemble.member(saved).temperature == 2.0
    assert sorted(p.name for p in saved.rglob("*")) == ["adapter", "adapter_model.safetensors", "calibration.json",
                                                        "llmclf.json"]
    (root / "README.md").write_text("placeholder\n")  # files beside the folders are not members
    assert ensemble.saved(root) == [saved]
    with pytest.raises(UserError, match="r64: exists; give another name, or --force"):
        ensemble.save("r64", source / "adapter", source / "calibration.json", root=root)
    ensemble.save("r64", source / "adapter", source / "calibration.json", force=True, root=root)
    for bad in ("../up", "a/b", ".hidden", ""):
        with pytest.raises(UserError, match="not a member name"):
            ensemble.save(bad, source / "adapter", source / "calibration.json", root=root)
    (source / "calibration.json").unlink()
    with pytest.raises(UserError, match="no such calibration file"):
        ensemble.save("new", source / "adapter", source / "calibration.json", root=root)
    assert not (root / "new").exists()


def test_evaluate_refuses_members_outside_the_stage_dep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_member(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="evaluate.members: elsewhere is not a folder in models/members"):
        ensemble.evaluate(["elsewhere"], {}, {}, CLASSES, 0, Inference())


def test_params_refuse_a_member_listed_twice():
    from llmclf.core.params import ParamsError

    assert params_with(evaluate={"members": ["models/members/a"]}).evaluate.members == ["models/members/a"]
    with pytest.raises(ParamsError, match="evaluate.members: .*each member folder once"):
        params_with(evaluate={"members": ["models/members/a", "models/members/a/"]})


@pytest.mark.parametrize("second", ["a", "a/", "./a", "../x/a", "link"])
def test_a_model_given_twice_under_any_name_is_refused(tmp_path, monkeypatch, second):
    """It would weigh double in the mean: the folders are compared as the paths they resolve to."""
    (tmp_path / "x").mkdir()
    monkeypatch.chdir(tmp_path / "x")
    fake_member(tmp_path / "x" / "a")
    (tmp_path / "x" / "link").symlink_to("a")
    with pytest.raises(UserError, match=rf"^{second}: the same model as a; give each model of the ensemble once"):
        ensemble.members(["a", second], CLASSES)
    with pytest.raises(UserError, match=r"^a: the same model as a/adapter"):  # the fine-tuned model itself
        ensemble.members(["a"], CLASSES, adapter="a/adapter")


def test_a_damaged_member_is_named_as_such_with_a_fix_for_members(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_member(tmp_path / "models" / "members" / "m")
    (tmp_path / "models" / "members" / "m" / "adapter" / "adapter_model.safetensors").write_bytes(b"cut")
    with pytest.raises(UserError, match=r"adapter_model.safetensors: changed since training") as e:
        ensemble.members(["models/members/m"], CLASSES)
    assert "calibration" not in str(e.value)  # the adapter is damaged, not its temperature
    fake_member(tmp_path / "models" / "members" / "n")
    (tmp_path / "models" / "members" / "n" / "calibration.json").write_text("T = 3")
    with pytest.raises(UserError, match=r"not a calibration file.*restore the member \(`dvc checkout`\), or save it "
                                        r"again \(`llmclf member save NAME --force`\)$") as e:
        ensemble.member("models/members/n")
    assert "--no-calibration" not in str(e.value)  # predict's flag: no fix for a member


def test_a_missing_teacher_says_how_to_save_a_teacher(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "teachers").mkdir(parents=True)
    with pytest.raises(UserError, match=r"models/teachers/ghost: not a teacher .*`llmclf member save NAME --teacher`"):
        ensemble.soft_labels(["models/teachers/ghost"], ["a text"], CLASSES)
    fake_member(tmp_path / "models" / "teachers" / "t")
    (tmp_path / "models" / "teachers" / "t" / "calibration.json").unlink()
    with pytest.raises(UserError, match=r"no such calibration file.*`llmclf member save NAME --teacher --force`"):
        ensemble.soft_labels(["models/teachers/t"], ["a text"], CLASSES)
