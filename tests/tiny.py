"""A tiny Llama (random weights, small byte-level BPE vocab) and a synthetic 4-topic corpus for tests."""
from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest

from llmclf.core import params

CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
TOPIC_WORDS = [
    ["minister", "election", "troops", "embassy", "treaty", "rebels"],
    ["match", "goal", "coach", "season", "league", "striker"],
    ["shares", "profit", "market", "merger", "stocks", "earnings"],
    ["software", "chip", "internet", "space", "computer", "research"],
]
FILLER = ["the", "a", "on", "said", "new", "report", "today", "after", "with", "of"]


def params_with(**groups: dict) -> params.Params:
    """The project's params.yaml with the keys in `groups` ({"train": {"lr": 1e-3}}) changed, validated as
    a whole: the schema holds no defaults, so a test states only where it differs from the main job."""
    raw = params.read_yaml(params.DEFAULTS)
    for group, values in groups.items():
        raw[group] = raw.get(group, {}) | values
    return params.parse(raw, f"{params.DEFAULTS} + {groups}")


def _group(cls):
    def build(**values):
        return cls.model_validate(params.read_yaml(params.DEFAULTS)[cls.__name__.lower()] | values)
    build.__doc__ = f"params.yaml's {cls.__name__.lower()} group with `values` changed, validated as a group"
    return build


# the params groups as tests build them: params.yaml's values, changed where a test says
Data, Sample, Model, Quant, Lora, Inference, Baseline, Train = map(_group, [
    params.Data, params.Sample, params.Model, params.Quant, params.Lora, params.Inference, params.Baseline,
    params.Train])


def Params(**groups) -> params.Params:
    """params.yaml with whole groups (built as above) in place of its own, validated as a whole."""
    return params_with(**{name: group.model_dump() for name, group in groups.items()})


def synthetic_texts(n_per_class: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """Short texts whose topic words give away the label: learnable in a few steps."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n_per_class):
        for label, words in enumerate(TOPIC_WORDS):
            n = rng.randint(4, 14)
            tokens = [rng.choice(words) if rng.random() < 0.5 else rng.choice(FILLER) for _ in range(n)]
            texts.append(" ".join(tokens))
            labels.append(label)
    return texts, labels


def build_tiny_llama(folder: Path, hidden_size: int = 64) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts, _ = synthetic_texts(50)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>")
    config = LlamaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, bos_token_id=0, eos_token_id=1, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_tiny_bert(folder: Path, hidden_size: int = 64) -> Path:
    """A tiny BERT encoder (WordPiece over the corpus words): its tokenizer has [PAD] and no eos."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({w for words in TOPIC_WORDS for w in words} | set(FILLER))
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])})
    config = BertConfig(vocab_size=len(words) + 5, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128, pad_token_id=0,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.2)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def reading_nothing_back():
    """Within: any read of a tensor's value to the host (what makes the host wait for a GPU) fails."""
    import torch

    def waits(*args, **kwargs):
        raise AssertionError("a tensor's value read back to the host")

    with pytest.MonkeyPatch.context() as m:
        for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
            m.setattr(torch.Tensor, name, waits)
        yield
