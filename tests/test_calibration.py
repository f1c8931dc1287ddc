"""Calibration: expected calibration error, reliability bins, temperature scaling and its file."""
import numpy as np
import pytest

from llmclf.core.errors import UserError
from llmclf.evaluate import calibration

# five rows of a two-class problem; confidences stay clear of the 15 bins' edges (multiples of 1/15)
PROBS = np.array([[0.97, 0.03], [0.95, 0.05], [0.3, 0.7], [0.55, 0.45], [0.5, 0.5]])
LABELS = np.array([0, 1, 1, 0, 1])  # right, wrong, right, right, wrong (a tie goes to class 0)


def test_ece_by_hand():
    # bin (14/15, 1]: 0.97 right, 0.95 wrong -> accuracy 0.5, confidence 0.96, gap 0.46, 2 rows
    # bin (10/15, 11/15]: 0.70 right -> gap 0.30; bin (8/15, 9/15]: 0.55 right -> gap 0.45
    # bin (7/15, 8/15]: 0.50 wrong -> gap 0.50
    assert calibration.ece(PROBS, LABELS) == pytest.approx((2 * 0.46 + 0.30 + 0.45 + 0.50) / 5)
    bins = calibration.reliability_bins(PROBS, LABELS)
    assert bins["count"].tolist() == [1, 1, 1, 2]
    assert bins["accuracy"].tolist() == [0.0, 1.0, 1.0, 0.5]
    assert bins["confidence"].tolist() == pytest.approx([0.5, 0.55, 0.7, 0.96])
    assert bins["bin_high"].iloc[-1] == 1.0 and bins["bin_low"].iloc[0] == pytest.approx(7 / 15)


def test_ece_is_zero_when_confidence_matches_accuracy():
    probs = np.array([[0.75, 0.25]] * 4)
    assert calibration.ece(probs, [0, 0, 0, 1]) == pytest.approx(0.0)
    assert calibration.ece(probs, [1, 1, 1, 1]) == pytest.approx(0.75)  # confident and always wrong


def test_confidence_one_lands_in_the_last_bin():
    bins = calibration.reliability_bins(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 0])
    assert bins[["bin_high", "count", "accuracy"]].values.tolist() == [[1.0, 2, 0.5]]


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_temperature_fit_recovers_a_known_temperature(true_t):
    """Labels drawn from softmax(z / T): the logits z are calibrated by exactly that T."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(20000, 4))
    p = calibration.probabilities(logits, true_t)
    labels = (p.cumsum(axis=1) < rng.random((len(p), 1))).sum(axis=1)
    fitted = calibration.fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_t, rel=0.05)
    assert calibration.nll(logits, labels, fitted) < calibration.nll(logits, labels)
    assert calibration.ece(calibration.probabilities(logits, fitted), labels) < 0.02
    assert calibration.ece(calibration.probabilities(logits), labels) > 0.05


def test_temperature_keeps_the_argmax_and_softens_or_sharpens():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2]])
    for t in (0.3, 1.0, 4.0):
        assert (calibration.probabilities(logits, t).argmax(axis=1) == logits.argmax(axis=1)).all()
    assert calibration.probabilities(logits, 4.0).max() < calibration.probabilities(logits).max() \
        < calibration.probabilities(logits, 0.3).max()
    np.testing.assert_allclose(calibration.probabilities(logits).sum(axis=1), 1.0)


def test_temperature_file_applies_only_to_its_adapter(tmp_path):
    adapter, other = tmp_path / "adapter", tmp_path / "other"
    for folder, weights in [(adapter, b"weights"), (other, b"other weights")]:
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(weights)
    path = tmp_path / "calibration.json"
    calibration.save_temperature(adapter, {"temperature": 1.7, "val_nll": 0.4}, path)

    assert calibration.load_temperature(adapter, path, required=True)[0] == 1.7
    t, note = calibration.load_temperature(other, path, required=False)
    assert t == 1.0 and "another adapter" in note
    with pytest.raises(UserError, match="fitted for another adapter"):
        calibration.load_temperature(other, path, required=True)
    t, note = calibration.load_temperature(adapter, tmp_path / "missing.json", required=False)
    assert t == 1.0 and "not temperature-scaled" in note
    with pytest.raises(UserError, match="no such calibration file"):
        calibration.load_temperature(adapter, tmp_path / "missing.json", required=True)


def test_inference_settings_are_the_recorded_ones_for_their_adapter_else_params_yaml(tmp_path):
    """`llmclf predict` and distillation's teachers run as the evaluate stage scored the adapter; an adapter
    it has not scored runs with params.yaml's inference settings, the one default."""
    from llmclf.core import params

    adapter, other = tmp_path / "adapter", tmp_path / "other"
    for folder, weights in [(adapter, b"weights"), (other, b"other weights")]:
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(weights)
    path = tmp_path / "calibration.json"
    scored = {"batch_size": 3, "max_batch_tokens": 99, "dense": False}
    calibration.save_temperature(adapter, {"temperature": 1.7}, path, inference=scored)
    committed = params.load(params.DEFAULTS).inference
    assert committed.model_dump() != scored

    assert calibration.inference_settings(adapter, path).model_dump() == scored
    assert calibration.inference_settings(other, path) == committed  # another adapter's record
    assert calibration.inference_settings(adapter, tmp_path / "missing.json") == committed
    (tmp_path / "not-ours.json").write_text('{"inference": {"batch_size": 3}}')
    assert calibration.inference_settings(adapter, tmp_path / "not-ours.json") == committed
    calibration.save_temperature(adapter, {"temperature": 1.7}, path)  # a record without settings
    assert calibration.inference_settings(adapter, path) == committed
