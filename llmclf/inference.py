"""Batched prediction: sort texts by length so each batch pads little, restore the input order."""
from __future__ import annotations

import time
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

Predict = Callable[[list[str], str], np.ndarray]  # (texts, progress-bar label) -> one row of scores a text


def token_batches(lengths: list[int], batch_size: int, max_tokens: int = 0) -> Iterator[np.ndarray]:
    """Indices in batches of similar length, longest first (an out-of-memory shows at once). `max_tokens`
    > 0 also caps a batch's padded tokens (rows x its longest row; one row at least), so activation memory
    is bounded by tokens rather than rows: long texts go in smaller batches."""
    order = np.argsort(lengths, kind="stable")[::-1]
    start = 0
    while start < len(order):
        rows = min(batch_size, max(1, max_tokens // max(1, lengths[order[start]]))) if max_tokens else batch_size
        yield order[start:start + rows]
        start += rows


def length_sorted_batches(lengths: list[int], batch_size: int, desc: str, max_tokens: int = 0) -> Iterator[np.ndarray]:
    """token_batches with a progress bar."""
    with tqdm(total=len(lengths), desc=desc, unit="text") as bar:
        for idx in token_batches(lengths, batch_size, max_tokens):
            yield idx
            bar.update(len(idx))


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows as one right-padded batch and its attention mask."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    mask = np.arange(lengths.max()) < lengths[:, None]
    ids = np.full(mask.shape, pad_id, dtype=np.int64)
    ids[mask] = np.fromiter((t for row in rows for t in row), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))


def collate(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Encoded rows (input_ids, attention_mask, labels) as one right-padded batch: what
    DataCollatorWithPadding gives, without the tokenizer's per-row padding."""
    ids, mask = pad_right([r["input_ids"] for r in rows], pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([r["labels"] for r in rows])}


@torch.inference_mode()
def predict_logits(model, tok, texts: list[str], batch_size: int, max_length: int,
                   desc: str = "predict", max_tokens: int = 0) -> np.ndarray:
    model.eval()
    enc = tok(list(texts), truncation=True, max_length=max_length)["input_ids"]
    dev = next(model.parameters()).device
    logits, order = [], []
    for idx in length_sorted_batches([len(ids) for ids in enc], batch_size, desc, max_tokens):
        ids, mask = pad_right([enc[i] for i in idx], tok.pad_token_id)
        if dev.type == "cuda":  # pinned: the copy is queued behind the kernels instead of waiting for them
            ids, mask = ids.pin_memory(), mask.pin_memory()
        logits.append(model(input_ids=ids.to(dev, non_blocking=True),
                            attention_mask=mask.to(dev, non_blocking=True)).logits.float())
        order.append(idx)
    out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
    out[np.concatenate(order)] = torch.cat(logits).cpu().numpy()  # one device sync, at the end
    return out


def classifier(model, tok, batch_size: int, max_length: int, max_tokens: int = 0) -> Predict:
    """A sequence classifier as a Predict function: texts -> logits."""
    return lambda texts, desc: predict_logits(model, tok, texts, batch_size, max_length, desc, max_tokens)


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
