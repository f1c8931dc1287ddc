"""Batched prediction: sort texts by length so each batch pads little, restore the input order."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..core.params import Inference
from ..model.batching import TOKENS, length_sorted_batches, model_inputs, needs_mask, pad_right
from ..model.dense import dense_for_inference

Predict = Callable[[list[str], str], np.ndarray]  # (texts, progress-bar label) -> one row of scores a text


@torch.inference_mode()
def predict_logits(model, tok, texts: list[str], batch_size: int, max_length: int,
                   desc: str = "predict", max_tokens: int = 0) -> np.ndarray:
    model.eval()
    # ids alone: pad_right builds the mask, and a mask per text would cost a Python list each
    enc = tok(list(texts), truncation=True, max_length=max_length, return_attention_mask=False,
              return_token_type_ids=False)["input_ids"]
    dev = next(model.parameters()).device
    mask_needed = needs_mask(model)
    logits, order = [], []
    for idx in length_sorted_batches([len(ids) for ids in enc], batch_size, desc, max_tokens):
        batch = dict(zip(TOKENS, pad_right([enc[i] for i in idx], tok.pad_token_id)))
        # pinned: the copy is queued behind the kernels instead of waiting for them
        batch = {k: (v.pin_memory() if dev.type == "cuda" else v).to(dev, non_blocking=True)
                 for k, v in model_inputs(batch, mask_needed).items()}
        logits.append(model(**batch).logits.float())
        order.append(idx)
    out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
    out[np.concatenate(order)] = torch.cat(logits).cpu().numpy()  # one device sync, at the end
    return out


def ready(model, settings: Inference):
    """The model as inference runs it: with dense weights where `settings.dense` says, else as loaded."""
    return dense_for_inference(model) if settings.dense else model.eval()


def classifier(model, tok, settings: Inference, max_length: int) -> Predict:
    """A sequence classifier as a Predict function (texts -> logits), run as `settings` say."""
    model = ready(model, settings)
    return lambda texts, desc: predict_logits(model, tok, texts, settings.batch_size, max_length, desc,
                                              settings.max_batch_tokens)


def predict_splits(predict: Predict, frames: dict[str, pd.DataFrame], warm_up: int = 0):
    """Scores for each split's texts, and examples per second. `warm_up` texts go through once first,
    untimed, so speeds are steady-state rather than CUDA and kernel start-up."""
    if warm_up:
        predict(next(iter(frames.values()))["text"].tolist()[:warm_up], "warm-up")
    logits, speed = {}, {}
    for split, df in frames.items():
        start = time.perf_counter()
        logits[split] = predict(df["text"].tolist(), split)
        speed[split] = round(len(df) / (time.perf_counter() - start), 1)
    return logits, speed
