"""Batched prediction: sort texts by length so each batch pads little, restore the input order."""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm


@torch.inference_mode()
def predict_logits(model, tok, texts: list[str], batch_size: int, max_length: int,
                   desc: str = "predict") -> np.ndarray:
    model.eval()
    enc = tok(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort([len(ids) for ids in enc], kind="stable")[::-1]  # longest first: OOM shows at once
    dev = next(model.parameters()).device
    out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        idx = order[start:start + batch_size]
        batch = tok.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt")
        logits = model(**{k: v.to(dev) for k, v in batch.items()}).logits
        out[idx] = logits.float().cpu().numpy()
    return out


def evaluate_splits(model, tok, classes: list[str], splits: list[str], batch_size: int, max_length: int,
                    splits_dir: str = "data/splits"):
    """Predict and score each split present. Returns ({split: scores}, {split: predictions}, {split: report})."""
    import time
    from pathlib import Path

    from . import metrics
    from .data import read_split

    scores, preds, reports = {}, {}, {}
    for split in splits:
        if split == "official_test" and not (Path(splits_dir) / f"{split}.parquet").is_file():
            print(f"evaluate: no official_test split in {splits_dir} (the source has no test split); skipped")
            continue
        df = read_split(splits_dir, split)
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
