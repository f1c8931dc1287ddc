"""Batched prediction: sort texts by length so each batch pads little, restore the input order."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics
from .data import read_split


@torch.inference_mode()
def predict_logits(model, tok, texts: list[str], batch_size: int, max_length: int,
                   desc: str = "predict") -> np.ndarray:
    model.eval()
    enc = tok(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort([len(ids) for ids in enc], kind="stable")[::-1]  # longest first: OOM shows at once
    dev = next(model.parameters()).device
    logits = []
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        rows = [enc[i] for i in order[start:start + batch_size]]
        ids = torch.full((len(rows), len(rows[0])), tok.pad_token_id, dtype=torch.long)  # right padding
        mask = torch.zeros_like(ids)
        for r, row in enumerate(rows):
            ids[r, :len(row)] = torch.tensor(row)
            mask[r, :len(row)] = 1
        logits.append(model(input_ids=ids.to(dev, non_blocking=True),
                            attention_mask=mask.to(dev, non_blocking=True)).logits.float())
    out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
    out[order] = torch.cat(logits).cpu().numpy()  # one device sync, at the end
    return out


def evaluate_splits(model, tok, classes: list[str], splits: list[str], batch_size: int, max_length: int,
                    splits_dir: str = "data/splits"):
    """Predict and score each split present. Returns ({split: scores}, {split: predictions}, {split: report})."""
    scores, preds, reports = {}, {}, {}
    warm = False
    for split in splits:
        if split == "official_test" and not (Path(splits_dir) / f"{split}.parquet").is_file():
            print(f"evaluate: no official_test split in {splits_dir} (the source has no test split); skipped")
            continue
        df = read_split(splits_dir, split)
        if not warm:  # one untimed batch: examples_per_s is steady-state, not CUDA/kernel start-up
            predict_logits(model, tok, df["text"].tolist()[:batch_size], batch_size, max_length, desc="warm-up")
            warm = True
        start = time.perf_counter()
        logits = predict_logits(model, tok, df["text"].tolist(), batch_size, max_length, desc=split)
        seconds = time.perf_counter() - start
        preds[split] = metrics.predictions_frame(df, logits, classes)
        scores[split] = metrics.scores(df["label"], preds[split]["pred"], classes) | {
            "examples_per_s": round(len(df) / seconds, 1)}
        reports[split] = metrics.report(df["label"], preds[split]["pred"], classes)
        print(f"{split}: accuracy {scores[split]['accuracy']:.4f}  balanced accuracy "
              f"{scores[split]['balanced_accuracy']:.4f}  ({len(df)} rows, {seconds:.1f} s)\n{reports[split]}")
    return scores, preds, reports
