"""Speed levers that keep the plain path's numbers: the dense base (NF4 dequantized once), the padding
collator, the cached FLOP count, the fused optimizer, no per-step nan/inf check, no attention mask for a
causal decoder. Levers that change the math (batch size, learning rate, 16-bit frozen layers) are judged
by the benchmark's accuracy."""
import gc
import time

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import DataCollatorWithPadding

from llmclf.evaluate import inference
from llmclf.model import batching
from llmclf.model.dense import dense_for_inference
from llmclf.model.loading import load_classifier
from llmclf.model.lora import add_lora, for_training
from llmclf.train import trainer as trainers
from tiny import CLASSES, Lora, Model, Quant, Train, synthetic_texts


def lora_classifier(tiny_model, dense: bool):
    """The same seeded classifier and LoRA init, on the 4-bit base or on its dequantized copy."""
    quant = Quant(mode="nf4")
    model, tok = load_classifier(Model(name=str(tiny_model), max_length=64), quant, CLASSES)
    torch.manual_seed(1)  # LoRA's init, after the dequantization
    model = for_training(model, Lora(target_modules="all-linear", dropout=0.0), quant,
                         Train(dense_base=dense, float32_frozen=False, gradient_checkpointing=False))
    return model, tok


def batch_of(tok, n=3, seed=7):
    texts, labels = synthetic_texts(n, seed=seed)
    rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)
    return rows, batching.collate(rows, tok.pad_token_id)


def logits_and_grads(model, batch):
    model.train()
    model.zero_grad()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.nn.functional.cross_entropy(out.logits, batch["labels"]).backward()
    return out.logits.detach(), {n.replace(".base_layer", ""): p.grad.clone()
                                 for n, p in model.named_parameters() if p.requires_grad}


def test_dense_base_is_the_4bit_base_in_plain_layers(tiny_model):
    """train.dense_base: LoRA on the dequantized weights gives the 4-bit path's logits and gradients."""
    import bitsandbytes as bnb

    quantized, tok = lora_classifier(tiny_model, dense=False)
    dense, _ = lora_classifier(tiny_model, dense=True)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in quantized.modules())
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in dense.modules())
    _, batch = batch_of(tok)
    ref_logits, ref_grads = logits_and_grads(quantized, batch)
    logits, grads = logits_and_grads(dense, batch)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    assert grads.keys() == ref_grads.keys() and len(grads) > 10
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6)
    assert any(g.abs().max() > 0 for g in grads.values())


def test_dense_layers_take_the_compute_dtype_not_the_float32_norms(tiny_model):
    """Dense inference of a model prepared for k-bit training (norms and head upcast to float32) runs in
    the 4-bit layers' compute dtype, as the 4-bit forward does, not in float32."""
    model, _ = load_classifier(Model(name=str(tiny_model), max_length=64, dtype="bfloat16"),
                                        Quant(mode="nf4"), CLASSES)
    model = add_lora(model, Lora(), quantized=True, gradient_checkpointing=False)
    assert any(p.dtype == torch.float32 for n, p in model.named_parameters() if "norm" in n)
    dense = dense_for_inference(model)
    assert {p.dtype for p in dense.parameters()} == {torch.bfloat16}


def test_collate_is_the_padding_collator(tiny_model):
    _, tok = lora_classifier(tiny_model, dense=True)
    rows, batch = batch_of(tok, n=4)
    ref = DataCollatorWithPadding(tok)(rows)
    assert batch.keys() - ref.keys() == {batching.LENGTHS}  # and the rows' lengths, on the host
    for key, value in ref.items():
        assert torch.equal(batch[key], value) and batch[key].dtype == value.dtype, key
    assert batch[batching.LENGTHS] == ref["attention_mask"].sum(1).tolist()


def test_a_step_without_syncs_and_with_fused_adamw_is_the_same_update(tiny_model, tmp_path):
    """Fused AdamW and no nan/inf filter: the same loss and weights after two steps as the defaults;
    the FLOP count is the model's own, taken once."""
    def two_steps(**kwargs):
        model, tok = lora_classifier(tiny_model, dense=True)
        rows, _ = batch_of(tok, n=4)
        train = Train(batch_size=8, eval_each_epoch=False, checkpoint_steps=0, lr=1e-2, **kwargs)
        args = trainers.training_args(train, str(tmp_path / str(len(kwargs))), len(rows), bf16=False, seed=0)
        trainer = trainers.make_trainer(model, tok, train, rows, None, args, class_weights=None)
        inputs = trainer.data_collator(rows)
        assert trainer.floating_point_ops(inputs) == trainers.Trainer.floating_point_ops(trainer, inputs) > 0
        result = trainer.train()
        assert bool(trainer.optimizer.defaults.get("fused")) == (train.optimizer == "adamw_torch_fused")
        assert trainer.args.logging_nan_inf_filter == train.nan_inf_filter
        return result.training_loss, {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    loss, weights = two_steps()
    fast_loss, fast_weights = two_steps(optimizer="adamw_torch_fused", nan_inf_filter=False)
    assert fast_loss == pytest.approx(loss, rel=1e-5)
    for name, w in weights.items():  # Adam divides by the gradients' own scale: near-zero ones differ more
        torch.testing.assert_close(fast_weights[name], w, rtol=1e-5, atol=1e-5)


def test_the_step_clock_splits_start_up_from_the_steps(tiny_model, tmp_path):
    """StepClock (the train stage's logs/train.json): the first step's seconds from the start of training,
    the median of the later steps', and with `sync` one wait per step end."""
    model, tok = lora_classifier(tiny_model, dense=True)
    texts, labels = synthetic_texts(3)
    rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)  # 12 rows: 3 steps of 4
    train = Train(batch_size=4, eval_each_epoch=False, checkpoint_steps=0)
    syncs = []
    clock = trainers.StepClock(sync=lambda: syncs.append(1))
    # the first step starts 2 s late: far more than a tiny model's step takes, even on a loaded CPU
    slow_start = type("SlowStart", (trainers.TrainerCallback,), {
        "on_step_begin": lambda self, args, state, control, **kw: time.sleep(2) if state.global_step == 0 else None})
    args = trainers.training_args(train, str(tmp_path / "out"), len(rows), bf16=False, seed=0)
    trainers.make_trainer(model, tok, train, rows, None, args, class_weights=None, callbacks=[clock, slow_start()]).train()
    summary = clock.summary()
    assert len(syncs) == len(clock.times) == 3
    assert summary["first_step_seconds"] >= 2 > summary["median_step_seconds"] > 0
    assert summary["median_step_seconds"] == round(float(np.median(np.diff(clock.times))), 3)
    assert trainers.StepClock().summary() == {}  # no step taken: nothing to say


def test_frozen_objects_cost_the_collector_nothing():
    """The train stage freezes what exists before training: the Trainer's gc.collect() then skips it."""
    junk = [[i] for i in range(300_000)]
    start = time.perf_counter(); gc.collect(); full = time.perf_counter() - start  # noqa: E702
    gc.freeze()
    try:
        start = time.perf_counter(); gc.collect(); frozen = time.perf_counter() - start  # noqa: E702
    finally:
        gc.unfreeze()
    assert frozen < full / 2 and len(junk) == 300_000


def test_a_causal_decoder_takes_right_padded_batches_without_their_mask(tiny_model, tiny_bert, tmp_path):
    """needs_mask: a right-padded batch gives a causal decoder the same logits and gradients without its
    attention mask (SDPA's causal kernel, no padding mask built); an encoder attends both ways and keeps
    it, and the training and inference forwards pass the mask exactly when it is needed."""
    model, tok = lora_classifier(tiny_model, dense=True)
    rows, batch = batch_of(tok, n=4)
    assert len(set(batch[batching.LENGTHS])) > 1  # rows of several lengths: real padding
    masked = logits_and_grads(model, batch)
    unmasked = logits_and_grads(model, {"input_ids": batch["input_ids"], "attention_mask": None,
                                        "labels": batch["labels"]})
    torch.testing.assert_close(unmasked[0], masked[0], rtol=1e-5, atol=1e-5)
    for name, grad in masked[1].items():
        torch.testing.assert_close(unmasked[1][name], grad, rtol=1e-4, atol=1e-6)
    assert not batching.needs_mask(model)

    bert, bert_tok = load_classifier(Model(name=str(tiny_bert), max_length=64), Quant(mode="none"), CLASSES)
    assert batching.needs_mask(bert)
    _, bert_batch = batch_of(bert_tok, n=4)
    bert.eval()
    with torch.no_grad():  # the mask matters to an encoder: without it, padding changes the logits
        assert not torch.allclose(bert(input_ids=bert_batch["input_ids"]).logits,
                                  bert(input_ids=bert_batch["input_ids"], attention_mask=bert_batch["attention_mask"]).logits)

    seen = []
    for m, t in ((model, tok), (bert, bert_tok)):
        hook = m.register_forward_pre_hook(lambda mod, args, kwargs: seen.append("attention_mask" in kwargs),
                                           with_kwargs=True)
        inference.predict_logits(m, t, synthetic_texts(2)[0], batch_size=4, max_length=64)
        train = Train(batch_size=4, eval_each_epoch=False, checkpoint_steps=0)
        rows = batch_of(t, n=1)[0]
        trainer = trainers.make_trainer(m, t, train, rows, None, trainers.training_args(
            train, str(tmp_path), len(rows), bf16=False, seed=0), class_weights=None)
        inputs = trainer.data_collator(rows)
        inputs.pop(batching.LENGTHS)  # the chunking step's, before the loss
        trainer.compute_loss(m, inputs)
        hook.remove()
    assert seen == [False, False, False, True, True, True]  # decoder: 2 inference batches + 1 loss; encoder alike
