"""Weight averaging (train.ema_decay) and the training seed (train.seed) on a tiny 4-bit Llama: off, the plain
Trainer's weights; on, exactly the EMA of the step trajectory, evaluated during training, resumed from a
checkpoint as if never stopped; the seed moves training alone."""
import functools

import pandas as pd
import pytest
import torch
from transformers import TrainerCallback

from llmclf import averaging, trainer as trainers
from llmclf.batching import collate
from llmclf.loading import load_classifier
from llmclf.lora import add_lora
from llmclf.params import Lora, Model, Quant, Train
from tiny import CLASSES, synthetic_texts


def rows_of(tok, n_per_class: int, seed: int) -> list[dict]:
    texts, labels = synthetic_texts(n_per_class, seed)
    return trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


class Trajectory(TrainerCallback):
    """The trainable weights before training and after each optimizer step."""

    def __init__(self, model):
        self.model, self.steps = model, []

    def on_train_begin(self, args, state, control, **kwargs):
        self.initial = trainable(self.model)

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(trainable(self.model))


def setup(tiny_model, tmp_path, **kwargs):
    """As the train stage builds it: the model and tokenizer from train.seed, then the Trainer. 8 steps an epoch."""
    train = Train(lr=3e-3, batch_size=4, gradient_checkpointing=False, logging_steps=1, **kwargs)
    model, tok = load_classifier(Model(name=str(tiny_model), max_length=64), Quant(mode="nf4"), CLASSES,
                                 seed=train.seed)
    model = add_lora(model, Lora(target_modules="all-linear"), quantized=True, gradient_checkpointing=False)
    rows, val_rows = rows_of(tok, 8, seed=1), rows_of(tok, 4, seed=2)
    args = trainers.training_args(train, str(tmp_path), len(rows), bf16=False, seed=train.seed)
    return train, model, tok, rows, val_rows, args


def make(tiny_model, tmp_path, callbacks=(), **kwargs):
    train, model, tok, rows, val_rows, args = setup(tiny_model, tmp_path, **kwargs)
    return trainers.make_trainer(model, tok, train, rows, val_rows, args, class_weights=[0.1, 0.2, 0.3, 0.4],
                                 callbacks=callbacks)


def hand_ema(initial: dict, steps: list[dict], decay: float) -> list[dict]:
    """The average after each step, in float32: decay_t = min(decay, (1 + t) / (10 + t)) at step t."""
    ema, out = {n: w.float() for n, w in initial.items()}, []
    for t, weights in enumerate(steps, start=1):
        d = min(decay, (1 + t) / (10 + t))
        ema = {n: d * ema[n] + (1 - d) * weights[n].float() for n in ema}
        out.append(ema)
    return out


def assert_weights(got: dict, want: dict, atol: float = 0.0):
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name].to(got[name].dtype), rtol=0, atol=atol, msg=name)


def test_ema_off_is_the_plain_trainer(tiny_model, tmp_path):
    trainer = make(tiny_model, tmp_path / "off", epochs=1, eval_each_epoch=False)
    assert trainer.ema is None and not any(isinstance(c, averaging.EMA) for c in trainer.callback_handler.callbacks)
    trainer.train()

    train, model, tok, rows, _, args = setup(tiny_model, tmp_path / "plain", epochs=1, eval_each_epoch=False)
    plain = trainers.WeightedLossTrainer(
        model=model, args=args, train_dataset=rows, processing_class=tok,
        data_collator=functools.partial(collate, pad_id=tok.pad_token_id), class_weights=[0.1, 0.2, 0.3, 0.4])
    plain.train()
    assert_weights(trainable(trainer.model), trainable(plain.model))


@pytest.mark.parametrize("eval_each_epoch", [False, True])
def test_training_ends_with_the_ema_of_the_steps_and_evaluates_it(tiny_model, tmp_path, eval_each_epoch):
    decay = 0.9
    trainer = make(tiny_model, tmp_path, epochs=3, ema_decay=decay, eval_each_epoch=eval_each_epoch)
    model = trainer.model
    names = trainable(model)
    frozen = {n: t.clone() for n, t in model.state_dict().items() if n not in names}
    recorded = Trajectory(model)
    trainer.add_callback(recorded)
    # the first epoch scores best: the average ending it, not the last one, must be the end result
    scores = {8: 0.9, 16: 0.5, 24: 0.7}
    trainer.compute_metrics = lambda pred: {"balanced_accuracy": scores.get(trainer.state.global_step, 0.0)}
    trainer.train()

    steps = recorded.steps
    assert len(steps) == 24
    ema = hand_ema(recorded.initial, steps, decay)
    end = 8 if eval_each_epoch else len(steps)
    assert trainer.state.best_model_checkpoint == (str(tmp_path / "checkpoint-8") if eval_each_epoch else None)
    assert_weights(trainable(model), ema[end - 1], atol=1e-6)
    last = steps[end - 1]
    assert max((ema[end - 1][n] - last[n]).abs().max() for n in last) > 1e-3  # an average, not the last weights

    # only the trainable weights are averaged, in float32; the frozen base is neither copied nor changed
    assert trainer.ema.averaged.keys() == names.keys()
    assert all(a.dtype == torch.float32 for a in trainer.ema.averaged.values())
    averaged = sum(a.numel() for a in trainer.ema.averaged.values())
    assert averaged == sum(p.numel() for p in names.values()) < sum(p.numel() for p in model.parameters()) / 2
    for name, tensor in model.state_dict().items():
        if name in frozen:
            assert torch.equal(tensor, frozen[name]), name

    if eval_each_epoch:  # each epoch's validation scored the average of that moment
        evals = [log for log in trainer.state.log_history if "eval_loss" in log]
        assert [log["step"] for log in evals] == [8, 16, 24]
        for log in evals:
            trainer.ema.write(ema[log["step"] - 1])
            assert trainer.evaluate()["eval_loss"] == pytest.approx(log["eval_loss"], rel=1e-5)


def test_a_resumed_run_ends_as_the_uninterrupted_one(tiny_model, tmp_path):
    kwargs = dict(epochs=2, ema_decay=0.9, eval_each_epoch=False, checkpoint_steps=6)  # lora dropout on
    whole = make(tiny_model, tmp_path / "whole", **kwargs)
    whole.train()
    checkpoint = tmp_path / "whole" / "checkpoint-6"
    saved = averaging.EMA(whole.model, 0.9)
    saved.load(checkpoint)  # the average at step 6, not that step's weights
    assert any(not torch.equal(saved.averaged[n], w) for n, w in trainable(whole.model).items())

    resumed = make(tiny_model, tmp_path / "resumed", **kwargs)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == whole.state.global_step == 16
    assert_weights(trainable(resumed.model), trainable(whole.model))


def test_train_seed_moves_the_weights(tiny_model, tmp_path):
    def weights(seed, name):
        trainer = make(tiny_model, tmp_path / name, epochs=1, eval_each_epoch=False, seed=seed)
        trainer.train()
        return trainable(trainer.model)

    first = weights(1, "a")
    assert_weights(weights(1, "b"), first)
    other = weights(2, "c")
    assert all(not torch.equal(other[n], first[n]) for n in first)  # head and every LoRA matrix
