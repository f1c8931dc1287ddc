"""The baselines: TF-IDF + logistic regression, and zero-shot prompting of a tiny Llama."""
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import AG_NEWS
from llmclf.data import sources
from llmclf.evaluate import baselines
from llmclf.model.loading import load_causal_lm
from tiny import Baseline, CLASSES, Data, Inference, Model, Quant, synthetic_texts



def frame(n_per_class: int, seed: int) -> pd.DataFrame:
    texts, labels = synthetic_texts(n_per_class, seed)
    return pd.DataFrame({"text": texts, "label": labels})


def test_tfidf_logreg_learns_the_topics():
    predict, c = baselines.tfidf_logreg(frame(20, seed=1), frame(10, seed=2))
    test = frame(25, seed=3)
    logp = predict(test["text"].tolist(), "test")
    assert logp.shape == (len(test), 4) and c in baselines.TFIDF_C
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1, atol=1e-9)
    assert (logp.argmax(axis=1) == test["label"]).mean() >= 0.9  # chance: 0.25


def test_tfidf_logreg_on_a_few_real_ag_news_rows():
    train = sources.fetch(Data(source=str(AG_NEWS)))[0]["train"]
    rows = train.groupby("label").head(250).sample(frac=1, random_state=0)  # 250 a class, shuffled
    fit, val, test = rows.iloc[:600], rows.iloc[600:800], rows.iloc[800:]
    predict, _ = baselines.tfidf_logreg(fit, val)
    assert (predict(test["text"].tolist(), "test").argmax(axis=1) == test["label"]).mean() > 0.7


@pytest.fixture(scope="module")
def lm(tiny_model):
    return load_causal_lm(Model(name=str(tiny_model), max_length=64), Quant(mode="none"))


def reference(lm, contexts, labels) -> np.ndarray:
    """One sequence at a time, full logits: the sum of log p(label token | all before it)."""
    out = np.zeros((len(contexts), len(labels)))
    with torch.no_grad():
        for i, c in enumerate(contexts):
            for j, t in enumerate(labels):
                logp = torch.log_softmax(lm(input_ids=torch.tensor([c + t])).logits[0].float(), dim=-1)
                out[i, j] = sum(logp[len(c) - 1 + q, token].item() for q, token in enumerate(t))
    return out


@pytest.mark.parametrize("mode", ["none", "nf4"])
def test_label_logprobs_match_an_unbatched_reference(tiny_model, mode):
    lm, tok = load_causal_lm(Model(name=str(tiny_model), max_length=64), Quant(mode=mode))
    texts = frame(3, seed=4)["text"].tolist()
    contexts, labels = baselines.zero_shot_prompts(tok, texts, [*CLASSES, "a"], Baseline(), 64)
    assert len({len(c) for c in contexts}) > 2 and {len(t) for t in labels} >= {1, 4}  # padding, one-token label
    expected = reference(lm, contexts, labels)
    for batch_size in (1, 7, 1000):  # one pair a batch, batches cutting a context's labels apart, one batch
        got = baselines.label_logprobs(lm, contexts, labels, tok.pad_token_id, batch_size)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    assert np.ptp(expected) > 1  # not all alike


def test_zero_shot_prompt_cuts_the_text_and_lists_the_classes(lm):
    _, tok = lm
    words = ["minister"] * 10 + ["striker"] * 300
    b = Baseline(zero_shot_prompt="Pick one of {classes}. Text: {text} Answer:")
    contexts, labels = baselines.zero_shot_prompts(tok, [" ".join(words)], CLASSES, b, max_length=20)
    prompt = tok.decode(contexts[0])
    assert prompt.startswith("Pick one of World, Sports, Business, Sci/Tech. Text: minister")
    assert prompt.endswith(" Answer:") and prompt.count("striker") < 20  # the text, cut to 20 tokens
    assert labels == [tok(" " + c, add_special_tokens=False)["input_ids"] for c in CLASSES]


def test_zero_shot_uses_the_chat_template_when_there_is_one(lm, monkeypatch):
    _, tok = lm
    monkeypatch.setattr(tok, "chat_template", "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}"
                        "{% if add_generation_prompt %}<s>{% endif %}")
    b = Baseline(zero_shot_prompt="Q {text}", zero_shot_chat_template=True)
    contexts, labels = baselines.zero_shot_prompts(tok, ["goal"], ["World"], b, 64)
    assert tok.decode(contexts[0]) == "<s>Q goal</s><s>"
    assert labels == [tok("World", add_special_tokens=False)["input_ids"]]  # the answer starts the turn: no space
    plain, _ = baselines.zero_shot_prompts(tok, ["goal"], ["World"], Baseline(zero_shot_prompt="Q {text}"), 64)
    assert tok.decode(plain[0]) == "Q goal"

AS_LOADED = Inference(batch_size=8, dense=False)  # the test's model runs as it is


def test_zero_shot_scores_sum_or_mean_and_predict_the_best_label(lm):
    model, tok = lm
    texts = frame(2, seed=5)["text"].tolist()
    labels = ["market report", "goal"]
    b = Baseline(zero_shot_labels=labels, zero_shot_score="sum")
    contexts, label_ids = baselines.zero_shot_prompts(tok, texts, labels, b, 64)
    expected = reference(model, contexts, label_ids)
    total = baselines.zero_shot(model, tok, ["a", "b"], b, AS_LOADED, 64)(texts, "test")
    np.testing.assert_allclose(total, expected, atol=1e-4)
    mean = baselines.zero_shot(model, tok, ["a", "b"], b.model_copy(update={"zero_shot_score": "mean"}), AS_LOADED, 64)
    np.testing.assert_allclose(mean(texts, "test"), expected / [len(t) for t in label_ids], atol=1e-4)
