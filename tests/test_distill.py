"""Distillation (train.teachers, train.distill_alpha): the teachers' mean temperature-scaled probabilities on
the training texts are soft labels, and the loss mixes their cross-entropy with the labels', computed by
hand here; it adds over rows, so token-capped chunks leave the update as it is; teachers are checked as
ensemble members are, must lie in the train stage's dep and run as the evaluate stage scored them."""
import numpy as np
import pandas as pd
import pytest
import torch

from llmclf.core.errors import UserError
from llmclf.evaluate import calibration, ensemble, inference
from llmclf.model import batching
from llmclf.model.adapter import load_adapter, save_adapter
from llmclf.model.loading import load_classifier
from llmclf.model.lora import add_lora
from llmclf.train import trainer as trainers
from tiny import CLASSES, Data, Inference, Lora, Model, Params, Quant, Train, params_with, synthetic_texts

WEIGHTS = [0.1, 0.2, 0.3, 0.4]


@pytest.fixture(scope="module")
def lora_model(tiny_model):
    torch.manual_seed(0)
    model, tok = load_classifier(Model(name=str(tiny_model), max_length=64), Quant(mode="nf4"), CLASSES)
    model = add_lora(model, Lora(target_modules="all-linear", dropout=0.0), quantized=True, gradient_checkpointing=False)
    with torch.no_grad():  # as after some training: the adapter changes the logits
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    return model, tok


def rows_and_batch(tok, n_per_class: int, seed: int, soft=None):
    """Encoded rows with soft labels (random ones unless given), and their collated batch."""
    texts, labels = synthetic_texts(n_per_class, seed)
    if soft is None:
        soft = np.random.default_rng(seed).dirichlet(np.ones(len(CLASSES)), size=len(texts)).astype(np.float32)
    rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64, soft_labels=soft)
    batch = batching.collate(rows, tok.pad_token_id)
    batch.pop(batching.LENGTHS)
    return rows, batch


def trainer_for(model, tok, rows, tmp_path, **kwargs):
    train = Train(gradient_checkpointing=False, eval_each_epoch=False, **{"label_smoothing": 0.1} | kwargs)
    args = trainers.training_args(train, str(tmp_path), len(rows), bf16=False, seed=0)
    trainer = trainers.make_trainer(model, tok, train, rows, None, args, class_weights=WEIGHTS)
    trainer.current_gradient_accumulation_steps = 1  # set by train(); these tests call one step
    return trainer


def by_hand(logits, labels, soft, alpha, smoothing=0.1):
    """(1 - alpha) x the label-smoothed, class-weighted cross-entropy + alpha x the soft labels'
    cross-entropy, each row weighted by its label's class weight; a weighted mean over rows."""
    w = torch.tensor(WEIGHTS)
    logp = logits.log_softmax(-1)
    target = torch.full_like(logp, smoothing / logp.shape[1])
    target[torch.arange(len(labels)), labels] += 1 - smoothing
    hard = -(target * logp * w).sum(-1)
    rows = w[labels]
    return ((1 - alpha) * hard + alpha * rows * -(soft * logp).sum(-1)).sum() / rows.sum()


def test_the_loss_mixes_the_labels_and_the_soft_labels_cross_entropies(lora_model, tmp_path):
    model, tok = lora_model
    rows, batch = rows_and_batch(tok, 2, seed=3)
    model.train()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    for alpha in (0.0, 0.3, 1.0):
        loss = trainer_for(model, tok, rows, tmp_path, distill_alpha=alpha).compute_loss(model, dict(batch))
        want = by_hand(logits, batch["labels"], batch[batching.SOFT_LABELS], alpha)
        assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    plain = {k: v for k, v in batch.items() if k != batching.SOFT_LABELS}
    assert trainer_for(model, tok, rows, tmp_path, distill_alpha=0.0).compute_loss(model, dict(batch)).item() == \
        pytest.approx(trainer_for(model, tok, rows, tmp_path).compute_loss(model, plain).item(), rel=1e-6)

    # teachers that put all their mass on the label are the labels: the plain loss, whatever alpha
    one_hot = np.eye(len(CLASSES), dtype=np.float32)[batch["labels"].numpy()]
    rows, batch = rows_and_batch(tok, 2, seed=3, soft=one_hot)
    plain = {k: v for k, v in batch.items() if k != batching.SOFT_LABELS}
    distilled = trainer_for(model, tok, rows, tmp_path, distill_alpha=0.7, label_smoothing=0.0)
    assert distilled.compute_loss(model, dict(batch)).item() == pytest.approx(
        trainer_for(model, tok, rows, tmp_path, label_smoothing=0.0).compute_loss(model, plain).item(), rel=1e-5)


def test_the_trainers_own_batches_carry_the_soft_labels(lora_model, tmp_path):
    """The rows' soft labels reach the loss through the Trainer's own data loader (which drops, unless
    told not to, every key the model's forward does not name): its batch's loss is the mixed one."""
    model, tok = lora_model
    rows, _ = rows_and_batch(tok, 2, seed=3)
    trainer = trainer_for(model, tok, rows, tmp_path, distill_alpha=0.5, batch_size=len(rows))
    batch = next(iter(trainer.get_train_dataloader()))
    batch.pop(batching.LENGTHS)
    soft = batch[batching.SOFT_LABELS]
    assert soft.shape == (len(rows), len(CLASSES)) and not torch.equal(soft.argmax(1), batch["labels"])
    model.train()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    want = by_hand(logits, batch["labels"], soft, 0.5)
    assert trainer.compute_loss(model, dict(batch)).item() == pytest.approx(want.item(), rel=1e-5)


def test_token_capped_chunks_give_the_same_update(lora_model, tmp_path):
    model, tok = lora_model
    rows, batch = rows_and_batch(tok, 4, seed=5)

    def step(trainer):
        model.zero_grad()
        loss = trainer.training_step(model, dict(batch)).item()
        return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    whole = trainer_for(model, tok, rows, tmp_path, distill_alpha=0.5)
    chunked = trainer_for(model, tok, rows, tmp_path, distill_alpha=0.5, max_batch_tokens=40)
    chunks = chunked._chunks(dict(batch))
    assert len(chunks) >= 3
    for r, c in chunks:  # each chunk keeps its own rows' soft labels
        torch.testing.assert_close(c[batching.SOFT_LABELS], batch[batching.SOFT_LABELS][r])
    loss, grads = step(whole)
    chunked_loss, chunked_grads = step(chunked)
    assert chunked_loss == pytest.approx(loss, rel=1e-5) and loss > 0.1
    for name, grad in grads.items():
        torch.testing.assert_close(chunked_grads[name], grad, rtol=1e-4, atol=1e-6)


def save_teacher(model, tok, folder, temperature, inference=None):
    """`model` as a teacher folder: its adapter, as the train stage saves it, and a fitted temperature (and
    the inference settings it was scored with)."""
    p = Params(data=Data(classes=CLASSES), model=Model(name=model.config.name_or_path, max_length=64),
               quant=Quant(mode="nf4"), lora=Lora(target_modules="all-linear"))
    save_adapter(model, tok, folder / "adapter", p, {})
    calibration.save_temperature(folder / "adapter", {"temperature": temperature}, folder / "calibration.json",
                                 inference=inference)
    return folder


def test_soft_labels_are_the_teachers_mean_calibrated_probabilities(lora_model, tmp_path, monkeypatch):
    model, tok = lora_model
    monkeypatch.chdir(tmp_path)
    scored = {"batch_size": 5, "max_batch_tokens": 0, "dense": False}
    hot = save_teacher(model, tok, ensemble.TEACHERS / "hot", 3.0, inference=scored)
    cold = save_teacher(model, tok, ensemble.TEACHERS / "cold", 0.5)
    texts, _ = synthetic_texts(3, seed=11)
    settings, scores = [], ensemble.member_probabilities
    monkeypatch.setattr(ensemble, "member_probabilities", lambda m, texts, s: settings.append(s) or scores(m, texts, s))
    soft, names, count = ensemble.soft_labels([str(hot), str(cold)], texts, CLASSES)
    # each as the evaluate stage scored it; one it has not scored, with params.yaml's settings
    assert [s.model_dump() for s in settings] == [scored, Inference().model_dump()]
    loaded, loaded_tok, _ = load_adapter(hot / "adapter")
    logits = inference.predict_logits(loaded, loaded_tok, texts, 8, 64)
    want = (calibration.probabilities(logits, 3.0) + calibration.probabilities(logits, 0.5)) / 2
    np.testing.assert_allclose(soft, want, atol=2e-4)
    assert soft.dtype == np.float32 and names == ["hot", "cold"]
    assert count == 2 * ensemble.parameters(loaded)

    save_teacher(model, tok, tmp_path / "elsewhere", 1.0)
    with pytest.raises(UserError, match="train.teachers: elsewhere is not a folder in models/teachers, which "
                                        r"dvc.yaml lists as the train stage's dep; `llmclf member save NAME --teacher`"):
        ensemble.soft_labels(["elsewhere"], texts, CLASSES)
    with pytest.raises(UserError, match="differ from the fine-tuned model's"):
        ensemble.soft_labels([str(hot)], texts, list(reversed(CLASSES)))


def test_params_refuse_a_teacher_twice_and_alpha_out_of_range():
    from llmclf.core.params import ParamsError

    assert params_with(train={"teachers": ["models/teachers/a"]}).train.teachers == ["models/teachers/a"]
    with pytest.raises(ParamsError, match="train.teachers: .*each teacher folder once"):
        params_with(train={"teachers": ["models/teachers/a", "models/teachers/a/"]})
    with pytest.raises(ParamsError, match="train.distill_alpha"):
        params_with(train={"distill_alpha": 1.5})
