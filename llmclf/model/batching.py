"""Batches of token rows: length-sorted, capped by rows and padded tokens, right-padded into tensors."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm


def rows_within(length: int, batch_size: int, max_tokens: int = 0) -> int:
    """How many rows of `length` padded tokens a batch holds: `batch_size`, fewer if `max_tokens` > 0 caps
    rows x length (one row at least)."""
    return min(batch_size, max(1, max_tokens // max(1, length))) if max_tokens else batch_size


def token_batches(lengths: list[int], batch_size: int, max_tokens: int = 0) -> Iterator[np.ndarray]:
    """Indices in batches of similar length, longest first (an out-of-memory shows at once). `max_tokens`
    > 0 also caps a batch's padded tokens (rows_within), so activation memory is bounded by tokens rather
    than rows: long texts go in smaller batches."""
    order = np.argsort(lengths, kind="stable")[::-1]
    start = 0
    while start < len(order):
        rows = rows_within(lengths[order[start]], batch_size, max_tokens)
        yield order[start:start + rows]
        start += rows


def length_sorted_batches(lengths: list[int], batch_size: int, desc: str, max_tokens: int = 0) -> Iterator[np.ndarray]:
    """token_batches with a progress bar."""
    with tqdm(total=len(lengths), desc=desc, unit="text") as bar:
        for idx in token_batches(lengths, batch_size, max_tokens):
            yield idx
            bar.update(len(idx))


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows as one right-padded batch and its attention mask, as wide as its longest row."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    mask = np.arange(int(lengths.max())) < lengths[:, None]
    ids = np.full(mask.shape, pad_id, dtype=np.int64)
    ids[mask] = np.fromiter((t for row in rows for t in row), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))


def needs_mask(model) -> bool:
    """Whether a right-padded batch must carry its attention mask into `model`. A decoder whose every
    attention layer is causal does not need it: its real tokens come before the padding and never attend
    to it, positions count from 0 either way, and the classifier pools at the last token of `input_ids`
    that is not padding. Without the mask, SDPA runs its causal kernel (FlashAttention on a GPU) instead
    of a masked one, and transformers builds no padding mask (nor waits for the GPU to check it). An
    encoder (BERT) attends both ways: it keeps the mask."""
    causal = [m.is_causal for m in model.modules() if isinstance(getattr(m, "is_causal", None), bool)]
    return not (causal and all(causal))


def model_inputs(batch: dict, mask: bool) -> dict:
    """`batch` as the model takes it: without its attention mask where `mask` (needs_mask) is False."""
    return batch if mask else {k: v for k, v in batch.items() if k != "attention_mask"}


def collate(rows: list[dict], pad_id: int) -> dict:
    """Encoded rows (input_ids, attention_mask, labels) as one right-padded batch: what
    DataCollatorWithPadding gives, without the tokenizer's per-row padding. Also LENGTHS, each row's token
    count as a list: known on the host when the batch is on the GPU; and SOFT_LABELS, the rows' distillation
    targets, where they have them."""
    ids, mask = pad_right([r["input_ids"] for r in rows], pad_id)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([r["labels"] for r in rows]),
             LENGTHS: [len(r["input_ids"]) for r in rows]}
    if SOFT_LABELS in rows[0]:
        batch[SOFT_LABELS] = torch.tensor(np.array([r[SOFT_LABELS] for r in rows], dtype=np.float32))
    return batch


LENGTHS = "lengths"  # a batch's key for its rows' token counts (not a model input)
SOFT_LABELS = "soft_labels"  # a batch's key for its rows' class probabilities from teachers (not a model input)
TOKENS = ("input_ids", "attention_mask")  # a batch's (rows, tokens) tensors

