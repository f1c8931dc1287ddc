"""Batches of token rows: length-sorted, capped by rows and padded tokens, right-padded into tensors."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm


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
