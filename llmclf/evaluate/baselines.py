"""Baselines that fine-tuning has to beat: TF-IDF + logistic regression trained on the same rows, and
zero-shot prompting of the causal LM (each class name scored as the continuation of an instruction)."""
from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import torch
from transformers import DynamicCache

from ..core.params import Baseline, Inference
from ..model.batching import length_sorted_batches, pad_right
from .inference import Predict, ready

TFIDF_C = (0.1, 1.0, 10.0, 100.0)  # inverse regularisation strengths tried; the best on val is kept


def tfidf_logreg(train: pd.DataFrame, val: pd.DataFrame) -> tuple[Predict, float]:
    """Word uni- and bigram TF-IDF (sublinear tf) into a multinomial logistic regression, fitted on the
    train rows, with C chosen by accuracy on val. Returns texts -> log-probabilities, and that C."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # here: baseline.tfidf off skips their import
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    fitted = {}
    for c in TFIDF_C:
        clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                            LogisticRegression(C=c, max_iter=2000))
        fitted[c] = clf.fit(train["text"], train["label"])
    best = max(TFIDF_C, key=lambda c: (fitted[c].score(val["text"], val["label"]), -c))  # ties: the simpler model
    return (lambda texts, desc: fitted[best].predict_log_proba(texts)), best


def zero_shot_prompts(tok, texts: list[str], labels: list[str], b: Baseline, max_length: int):
    """Token ids of each text's prompt (the text cut to max_length tokens, as the classifier reads it)
    and of each label as its continuation."""
    chat = b.zero_shot_chat_template and tok.chat_template is not None
    contexts = []
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) > max_length:
            text = tok.decode(ids[:max_length])
        prompt = b.zero_shot_prompt.replace("{classes}", ", ".join(labels)).replace("{text}", text)
        contexts.append(tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                tokenize=True, return_dict=False)
                        if chat else tok(prompt)["input_ids"])
    # a plain prompt ends before the answer's word, which takes its leading space; a chat turn starts it
    continuations = [tok(("" if chat else " ") + label, add_special_tokens=False)["input_ids"] for label in labels]
    return contexts, continuations


@torch.inference_mode()
def label_logprobs(lm, contexts: list[list[int]], labels: list[list[int]], pad_id: int, batch_size: int,
                   desc: str = "zero-shot", max_tokens: int = 0) -> np.ndarray:
    """log p(label | context), summed over the label's tokens, for every context (rows) and label (columns).
    Each context is read once; its key/value cache, repeated per label, serves the labels' later tokens.
    `batch_size` and `max_tokens` count (context, label) pairs and their tokens; the vocabulary projection
    runs only where a label token is predicted."""
    lm.eval()
    head, dev, k = lm.get_output_embeddings(), next(lm.parameters()).device, len(labels)
    # the cache argument's name: `past_key_values` in earlier transformers 5 releases, `cache` in later ones
    cache_arg = "cache" if "cache" in inspect.signature(lm.base_model.forward).parameters else "past_key_values"
    longest = max(map(len, labels))
    first = torch.tensor([t[0] for t in labels], device=dev)
    # the labels' later tokens: fed after the context (all but the last), and predicted (all but the first)
    fed, fed_mask = (x.to(dev) for x in pad_right([t[:-1] for t in labels], pad_id)) if longest > 1 else (None, None)
    later = pad_right([t[1:] for t in labels], pad_id)[0].to(dev) if longest > 1 else None
    scores, order = [], []
    for idx in length_sorted_batches([len(c) for c in contexts], max(1, batch_size // k), desc,
                                     max_tokens and max(1, max_tokens // k)):
        ids, mask = (x.to(dev, non_blocking=True) for x in pad_right([contexts[i] for i in idx], pad_id))
        n, ends = len(idx), mask.sum(dim=1)
        cache = {cache_arg: DynamicCache(config=lm.config)} if longest > 1 else {}
        hidden = lm.base_model(input_ids=ids, attention_mask=mask, use_cache=longest > 1, **cache).last_hidden_state
        last = hidden[torch.arange(n, device=dev), ends - 1]  # predicts each label's first token
        batch = torch.log_softmax(head(last).float(), dim=-1)[:, first]  # (n, k)
        if longest > 1:
            cache[cache_arg].batch_repeat_interleave(k)  # row i * k + j: context i, label j
            steps = torch.arange(longest - 1, device=dev)
            hidden = lm.base_model(
                input_ids=fed.repeat(n, 1), use_cache=True, **cache,
                attention_mask=torch.cat([mask.repeat_interleave(k, dim=0), fed_mask.repeat(n, 1)], dim=1),
                position_ids=ends.repeat_interleave(k)[:, None] + steps).last_hidden_state
            logp = torch.log_softmax(head(hidden).float(), dim=-1)  # (n * k, longest - 1, vocab)
            picked = logp.gather(-1, later.repeat(n, 1)[..., None]).squeeze(-1) * fed_mask.repeat(n, 1)
            batch = batch + picked.sum(dim=1).view(n, k)
        scores.append(batch)
        order.append(idx)
    out = np.empty((len(contexts), k), dtype=np.float32)
    out[np.concatenate(order)] = torch.cat(scores).cpu().numpy()  # one device sync, at the end
    return out


def zero_shot(lm, tok, classes: list[str], b: Baseline, settings: Inference, max_length: int) -> Predict:
    """The causal LM as a zero-shot classifier, run as `settings` say: texts -> per-class scores, each the
    answer's log-likelihood after the prompt, summed over its tokens or their mean (b.zero_shot_score);
    the highest is predicted."""
    labels = b.zero_shot_labels or classes  # params.load checked: one per class
    lm = ready(lm, settings)

    def predict(texts: list[str], desc: str) -> np.ndarray:
        contexts, continuations = zero_shot_prompts(tok, texts, labels, b, max_length)
        scores = label_logprobs(lm, contexts, continuations, tok.pad_token_id, settings.batch_size, desc,
                                settings.max_batch_tokens)
        return scores / np.array([len(t) for t in continuations]) if b.zero_shot_score == "mean" else scores

    return predict
