"""Bounded GPU memory without a different result: token-capped batches, chunked training steps,
activations offloaded to host memory. Each lever must give the numbers of the plain path."""
import functools

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import DataCollatorWithPadding

from llmclf.evaluate import inference
from llmclf.model import batching
from llmclf.model.loading import load_classifier
from llmclf.model.lora import add_lora
from llmclf.train import memory, trainer as trainers
from tiny import CLASSES, Lora, Model, Quant, Train, reading_nothing_back, synthetic_texts


def test_token_batches_cap_padded_tokens_and_cover_every_row_once():
    lengths = [5, 40, 12, 40, 3, 25, 7, 90, 18, 12]
    batches = list(batching.token_batches(lengths, batch_size=4, max_tokens=60))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in batches[0]] == [90]  # longest first; alone over the cap, still one row
    for idx in batches:
        assert len(idx) <= 4 and (len(idx) == 1 or len(idx) * max(lengths[i] for i in idx) <= 60)
    assert [len(b) for b in batching.token_batches(lengths, 4)] == [4, 4, 2]  # no cap: rows only


@pytest.fixture(scope="module")
def lora_model(tiny_model):
    torch.manual_seed(0)
    model, tok = load_classifier(Model(name=str(tiny_model), max_length=64), Quant(mode="nf4"), CLASSES)
    # no dropout: a chunked step must draw the same function as a whole one
    return add_lora(model, Lora(target_modules="all-linear", dropout=0.0), quantized=True,
                             gradient_checkpointing=False), tok


def test_token_capped_inference_gives_the_same_logits(lora_model):
    model, tok = lora_model
    texts, _ = synthetic_texts(6, seed=4)
    whole = inference.predict_logits(model, tok, texts, batch_size=len(texts), max_length=64)
    capped = inference.predict_logits(model, tok, texts, batch_size=len(texts), max_length=64, max_tokens=40)
    np.testing.assert_allclose(capped, whole, rtol=0, atol=1e-5)


def trainer_for(model, tok, rows, tmp_path, **kwargs):
    train = Train(label_smoothing=0.1, **kwargs)
    args = trainers.training_args(train, str(tmp_path), len(rows), bf16=False, seed=0)
    trainer = trainers.make_trainer(model, tok, train, rows, rows, args, class_weights=[0.1, 0.2, 0.3, 0.4])
    trainer.current_gradient_accumulation_steps = 1  # set by train(); these tests call one step
    return trainer


def step(trainer, model, batch):
    """One training step's loss and the gradients it leaves."""
    model.zero_grad()
    loss = trainer.training_step(model, dict(batch)).item()
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_a_chunked_step_is_the_same_update_and_validation(lora_model, tmp_path):
    model, tok = lora_model
    texts, labels = synthetic_texts(4, seed=5)
    rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)
    batch = DataCollatorWithPadding(tok)(rows)
    whole = trainer_for(model, tok, rows, tmp_path)
    chunked = trainer_for(model, tok, rows, tmp_path, max_batch_tokens=40)
    assert len(chunked._chunks(dict(batch))) >= 3 and whole._chunks(dict(batch)) is None

    loss, grads = step(whole, model, batch)
    chunked_loss, chunked_grads = step(chunked, model, batch)
    assert chunked_loss == pytest.approx(loss, rel=1e-5) and loss > 0.1
    for name, grad in grads.items():
        torch.testing.assert_close(chunked_grads[name], grad, rtol=1e-4, atol=1e-6)
    assert any(g.abs().max() > 0 for g in grads.values())

    ref_loss, ref_logits, ref_labels = whole.prediction_step(model, dict(batch), prediction_loss_only=False)
    got_loss, got_logits, got_labels = chunked.prediction_step(model, dict(batch), prediction_loss_only=False)
    assert got_loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    torch.testing.assert_close(got_logits, ref_logits, rtol=0, atol=1e-5)  # in the batch's own row order
    assert torch.equal(got_labels, ref_labels)


def test_chunks_are_planned_from_the_collated_lengths_without_reading_the_mask(lora_model, tmp_path):
    """collate gives each row's length as a list: the chunks are those the mask gives, with nothing read
    back from the batch's tensors (on a GPU: no wait for it); the model never sees the lengths."""
    model, tok = lora_model
    texts, labels = synthetic_texts(4, seed=5)
    rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)
    batch = batching.collate(rows, tok.pad_token_id)
    assert batch[batching.LENGTHS] == batch["attention_mask"].sum(1).tolist()
    chunked = trainer_for(model, tok, rows, tmp_path, max_batch_tokens=40)
    tensors = {k: v for k, v in batch.items() if k != batching.LENGTHS}
    from_mask = chunked._chunks(tensors)
    with reading_nothing_back():
        planned = chunked._chunks(tensors, lengths=batch[batching.LENGTHS])
    assert len(planned) == len(from_mask) >= 3
    for (rows_a, a), (rows_b, b) in zip(planned, from_mask):
        assert torch.equal(rows_a, rows_b) and a.keys() == b.keys() and batching.LENGTHS not in a
        assert all(torch.equal(a[k], b[k]) for k in a)
    # a whole step from the collated batch: the plain step's loss (the lengths are not a model input)
    assert step(chunked, model, batch)[0] == pytest.approx(step(trainer_for(model, tok, rows, tmp_path), model,
                                                                batch)[0], rel=1e-5)


def test_offloaded_activations_are_host_copies_and_give_the_same_gradients(lora_model, tmp_path, monkeypatch):
    weight = torch.nn.Parameter(torch.randn(64, 64))
    x = torch.randn(8, 64, requires_grad=True)
    with memory.offload_to_host(devices=("cpu",), min_bytes=0):
        y = torch.tanh(x @ weight)
    saved = y.grad_fn.next_functions[0][0]  # the matmul: saves its input and the weight
    assert saved._saved_self.data_ptr() != x.data_ptr()  # the activation: a copy, read back for backward
    assert saved._saved_mat2.data_ptr() == weight.data_ptr()  # the parameter: never copied
    torch.testing.assert_close(saved._saved_self, x.detach())

    model, tok = lora_model
    texts, labels = synthetic_texts(3, seed=6)
    rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)
    batch = DataCollatorWithPadding(tok)(rows)
    loss, grads = step(trainer_for(model, tok, rows, tmp_path), model, batch)
    # on CPU nothing is offloaded unless told: offload CPU tensors here, as it would CUDA ones on a GPU
    monkeypatch.setattr(memory, "offload_to_host",
                        functools.partial(memory.offload_to_host, devices=("cpu",), min_bytes=0))
    off_loss, off_grads = step(trainer_for(model, tok, rows, tmp_path, offload_activations=True), model, batch)
    assert off_loss == pytest.approx(loss, rel=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(off_grads[name], grad, rtol=0, atol=0)


def test_adapter_inputs_left_to_autocast_give_the_same_step_in_fewer_copies(tiny_model, tmp_path):
    """Under bf16 autocast make_trainer turns off peft's cast of each LoRA input to the adapters' float32
    (autocast_adapter_inputs): the same loss and gradients (no dropout: the same function), fewer copies."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    torch.manual_seed(0)
    model, tok = load_classifier(Model(name=str(tiny_model), max_length=64, dtype="bfloat16"), Quant(mode="none"),
                                 CLASSES)
    model = add_lora(model, Lora(dropout=0.0), quantized=False, gradient_checkpointing=False)
    texts, labels = synthetic_texts(4, seed=6)
    rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)
    batch = DataCollatorWithPadding(tok)(rows)
    train = Train(eval_each_epoch=False)
    args = trainers.training_args(train, str(tmp_path), len(rows), bf16=True, seed=0)
    trainer = trainers.make_trainer(model, tok, train, rows, None, args, class_weights=None)
    trainer.current_gradient_accumulation_steps = 1
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    assert layers and not any(m.cast_input_dtype_enabled for m in layers)

    def profiled_step():  # as train() runs it: the forward under the accelerator's autocast
        with torch.profiler.profile() as prof, trainer.accelerator.autocast():
            loss, grads = step(trainer, model, batch)
        return loss, grads, sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")

    loss, grads, copies = profiled_step()
    for m in layers:
        m.cast_input_dtype_enabled = True  # peft's default
    cast_loss, cast_grads, cast_copies = profiled_step()
    assert loss == cast_loss and loss > 0.1
    for name, grad in grads.items():
        torch.testing.assert_close(grad, cast_grads[name], rtol=0, atol=0)
    assert any(g.abs().max() > 0 for g in grads.values())
    assert copies <= cast_copies - 2 * len(layers)  # at least one copy fewer each way, each layer
