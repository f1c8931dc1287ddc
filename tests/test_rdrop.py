"""R-Drop (train.rdrop_alpha) on a tiny 4-bit Llama with LoRA dropout: the loss is the two dropout draws'
mean cross-entropy plus alpha/2 times their symmetric KL, computed by hand here; it adds over rows, so
token-capped chunks and filler rows leave it as it is; off, and in evaluation, it is the plain loss."""
import pandas as pd
import pytest
import torch
from transformers import DataCollatorWithPadding

from llmclf import trainer as trainers
from llmclf.batching import IGNORED
from llmclf.errors import UserError
from llmclf.loading import load_classifier
from llmclf.lora import add_lora
from llmclf.params import Lora, Model, Quant, Train
from tiny import CLASSES, synthetic_texts

WEIGHTS = [0.1, 0.2, 0.3, 0.4]


def model_with(tiny_model, dropout: float):
    torch.manual_seed(0)
    model, tok = load_classifier(Model(name=str(tiny_model), max_length=64), Quant(mode="nf4"), CLASSES)
    return add_lora(model, Lora(target_modules="all-linear", dropout=dropout), quantized=True,
                    gradient_checkpointing=False), tok


@pytest.fixture(scope="module")
def dropout_model(tiny_model):
    model, tok = model_with(tiny_model, dropout=0.3)
    with torch.no_grad():  # as after some training: LoRA starts at B = 0, where dropout changes nothing
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    return model, tok


def trainer_for(model, tok, rows, tmp_path, **kwargs):
    train = Train(label_smoothing=0.1, gradient_checkpointing=False, **kwargs)
    args = trainers.training_args(train, str(tmp_path), len(rows), bf16=False, seed=0)
    trainer = trainers.make_trainer(model, tok, train, rows, rows, args, class_weights=WEIGHTS)
    trainer.current_gradient_accumulation_steps = 1  # set by train(); these tests call one step
    return trainer


def batch_of(tok, n_per_class: int, seed: int):
    texts, labels = synthetic_texts(n_per_class, seed)
    rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)
    return rows, DataCollatorWithPadding(tok)(rows)


def by_hand(a, b, labels, alpha, smoothing=0.1):
    """The paper's loss for one batch, halved, as a class-weighted mean over rows; KL as sum p log(p/q)."""
    w = torch.tensor(WEIGHTS)

    def ce(logits):  # label-smoothed, class-weighted cross-entropy of each row
        logp = logits.log_softmax(-1)
        target = torch.full_like(logp, smoothing / logp.shape[1])
        target[torch.arange(len(labels)), labels] += 1 - smoothing
        return -(target * logp * w).sum(-1)

    def kl(p, q):
        return (p.softmax(-1) * (p.log_softmax(-1) - q.log_softmax(-1))).sum(-1)

    rows = w[labels]
    return ((ce(a) + ce(b)) / 2 + alpha / 2 * rows * (kl(a, b) + kl(b, a)) / 2).sum() / rows.sum()


def test_the_loss_is_the_two_draws_mean_cross_entropy_plus_their_kl(dropout_model, tmp_path):
    model, tok = dropout_model
    rows, batch = batch_of(tok, 2, seed=7)
    trainer = trainer_for(model, tok, rows, tmp_path, rdrop_alpha=4.0)
    model.train()
    torch.manual_seed(1)
    loss = trainer.compute_loss(model, dict(batch))
    torch.manual_seed(1)  # the same dropout draws, by hand: the batch twice in one forward
    twice = {k: torch.cat([v, v]) for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        a, b = model(**twice).logits.float().chunk(2)
    assert not torch.allclose(a, b)  # two draws
    want = by_hand(a, b, batch["labels"], alpha=4.0)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert loss.item() > by_hand(a, b, batch["labels"], alpha=0.0).item() + 1e-4  # the KL counts

    loss.backward()  # and it trains: gradients reach LoRA
    assert any(p.grad is not None and p.grad.abs().max() > 0 for n, p in model.named_parameters() if "lora_" in n)
    model.zero_grad()


def test_off_or_in_evaluation_it_is_the_plain_loss(dropout_model, tmp_path):
    model, tok = dropout_model
    rows, batch = batch_of(tok, 2, seed=8)
    plain = trainer_for(model, tok, rows, tmp_path / "plain")
    rdrop = trainer_for(model, tok, rows, tmp_path / "rdrop", rdrop_alpha=1.0)
    model.eval()  # no dropout: one forward, the plain loss
    assert rdrop.compute_loss(model, dict(batch)).item() == pytest.approx(
        plain.compute_loss(model, dict(batch)).item(), rel=1e-6)
    ref, got = (t.prediction_step(model, dict(batch), prediction_loss_only=False) for t in (plain, rdrop))
    torch.testing.assert_close(got[1], ref[1], rtol=0, atol=0)  # the logits of the batch once
    assert got[1].shape[0] == len(rows)


def test_it_adds_over_rows_so_chunks_and_filler_rows_leave_it_unchanged(dropout_model, tmp_path):
    model, tok = dropout_model
    rows, batch = batch_of(tok, 3, seed=9)
    trainer = trainer_for(model, tok, rows, tmp_path, rdrop_alpha=2.0, max_batch_tokens=40)
    torch.manual_seed(2)
    a, b, labels = torch.randn(12, 4), torch.randn(12, 4), batch["labels"]
    whole = trainer._rdrop_loss(a, b, labels, torch.tensor(WEIGHTS))
    parts = sum(trainer._rdrop_loss(a[i:i + 5], b[i:i + 5], labels[i:i + 5], torch.tensor(WEIGHTS))
                for i in range(0, 12, 5))
    assert parts.item() == pytest.approx(whole.item(), rel=1e-6)
    filled = trainer._rdrop_loss(torch.cat([a, torch.randn(3, 4)]), torch.cat([b, torch.randn(3, 4)]),
                                 torch.cat([labels, torch.full((3,), IGNORED)]), torch.tensor(WEIGHTS))
    assert filled.item() == pytest.approx(whole.item(), rel=1e-6)
    # a chunk runs twice in one forward: it holds half the tokens the cap allows
    chunks = trainer._chunks(dict(batch), copies=2)
    assert all(c["attention_mask"].numel() <= 20 or len(c["labels"]) == 1 for _, c in chunks)
    assert len(chunks) > len(trainer._chunks(dict(batch)))


def test_without_dropout_it_is_refused(tiny_model, tmp_path):
    model, tok = model_with(tiny_model, dropout=0.0)
    rows, _ = batch_of(tok, 1, seed=10)
    with pytest.raises(UserError, match=r"train.rdrop_alpha 1.0 .* set lora.dropout above 0"):
        trainer_for(model, tok, rows, tmp_path, rdrop_alpha=1.0)
    trainer_for(model, tok, rows, tmp_path)  # off: no dropout needed
