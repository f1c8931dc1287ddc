"""Load the base model as a sequence classifier or causal LM, quantized as `quant` says, with its tokenizer."""
from __future__ import annotations

import logging
import re
import warnings

import torch
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                          BitsAndBytesConfig)

from ..core.errors import ModelError
from ..core.gpus import compute_dtype, default_device
from ..core.params import Model, Quant
from . import basemodel

CLASSIFIER_HEADS = ["score", "classifier"]  # a decoder's and an encoder's classification head
# Heads stay in full precision: bitsandbytes would otherwise quantize a head that has a bias. A skip
# list of our own replaces transformers' default one, which holds the language-model head: name it too.
HEAD_MODULES = [*CLASSIFIER_HEADS, "lm_head"]


class _FreshHeadReport(logging.Filter):
    """transformers reports the classification head missing from the checkpoint on every load of a base
    model: it always is (the head is new, then trained, or loaded from the adapter right after), and
    "consider training" misleads on prediction. Only that report is dropped: one that names any other
    key (missing, unexpected, mismatched) still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())
        if "LOAD REPORT" not in text:
            return True
        rows = [[cell.strip() for cell in line.split("|")] for line in text.splitlines() if "|" in line][1:]
        # the head's own keys (score.weight; an MPNet head's classifier.dense.weight, classifier.out_proj.bias)
        return not rows or any(row[0].split(".")[0] not in CLASSIFIER_HEADS or row[1] != "MISSING"
                               for row in rows)

def quiet_notices() -> None:
    """Quiet what a user can do nothing about: set by an entry point (stages/_env.py) and on every model load,
    never on import. bitsandbytes, on CPUs with AVX512-BF16, looks for an optional package ("kernels") for the
    repacked weight layout that _no_cpu_bf16_repack below turns off, and says so when imported (by peft, or
    the Trainer): its level is set before. peft asks a transformers 5 model for an attribute renamed in 5.
    And transformers' report of the fresh head (_FreshHeadReport)."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    heads = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _FreshHeadReport) for f in heads.filters):
        heads.addFilter(_FreshHeadReport())


def quant_config(quant: Quant, dtype: torch.dtype) -> BitsAndBytesConfig | None:
    if quant.mode == "none":
        return None
    if quant.mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=HEAD_MODULES)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant.mode,
                              bnb_4bit_use_double_quant=quant.double_quant,
                              bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=HEAD_MODULES)


def load_tokenizer(path: str, trust_remote_code: bool = False):
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    # as the tutorial: pad with eos (no new token, no embedding resize), pad on the right; an encoder
    # (BERT) has no eos but a pad token of its own
    if tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    if tok.pad_token is None:
        raise ModelError(f"{path}: the tokenizer has neither an eos nor a pad token")
    tok.padding_side = "right"
    return tok


def _no_cpu_bf16_repack(model) -> None:
    """bitsandbytes' CPU AVX512-BF16 weight repacking, done on the first eval forward, silently
    corrupts later gradients: keep 4-bit layers in their plain packed form."""
    import bitsandbytes as bnb

    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False


def _from_pretrained(auto_class, model: Model, quant: Quant, seed: int = 0, device: torch.device | None = None,
                     **kwargs):
    """The base model through `auto_class`, quantized as `quant` says, and its tokenizer. All of it on
    one `device` (default: the GPU if any): under DDP each process's own GPU (a 4-bit model is not moved)."""
    quiet_notices()
    device = device or default_device()
    if model.attn_implementation == "flash_attention_2" and device.type != "cuda":
        raise ModelError("model.attn_implementation flash_attention_2 needs a CUDA GPU; use sdpa")
    if device.type == "cuda":
        # SDPA without cuDNN's attention, which PyTorch tries first on an H100: on these short texts it spent
        # 0.8-1.0 ms of host time a call against 45-143 us of kernel, in a training loop bound by host time
        torch.backends.cuda.enable_cudnn_sdp(False)
    path = basemodel.resolve(model.name)
    dtype = compute_dtype(model)
    torch.manual_seed(seed)  # weights not in the checkpoint (a fresh head) start from it
    try:
        tok = load_tokenizer(path, model.trust_remote_code)
        loaded = auto_class.from_pretrained(
            path, quantization_config=quant_config(quant, dtype), dtype=dtype, device_map={"": device},
            attn_implementation=model.attn_implementation, trust_remote_code=model.trust_remote_code,
            use_safetensors=not model.allow_pickle_weights,
            # no kernels fetched from the Hub: transformers 5.25 would on a GPU (its rotary embedding), which
            # is code from the network, and stops an offline load
            use_kernels=False, **kwargs)
    except (OSError, ImportError, ValueError) as e:  # files unreadable or missing; a kernel not installed; custom code
        if "does not support an attention implementation" in str(e):  # transformers' check against the architecture
            raise ModelError(f"model.name {model.name!r}: its architecture has no {model.attn_implementation} "
                             "attention in this transformers; set model.attn_implementation: eager") from None
        hint = ("Only safetensors weights are loaded; set model.allow_pickle_weights: true to accept "
                "pickle (.bin) files you trust." if "safetensors" in str(e) else
                "It loads with code of its own: set model.trust_remote_code: true only if you trust that code."
                if "trust_remote_code" in str(e) else
                "Offline, use a local folder, a .gguf file or an alias such as smollm2-135m-instruct.")
        raise ModelError(f"model.name {model.name!r}: cannot load ({' '.join(str(e).split())[:300]}). {hint}") from None
    loaded.config.pad_token_id = tok.pad_token_id
    if quant.mode in ("nf4", "fp4") and device.type == "cpu":
        _no_cpu_bf16_repack(loaded)
    return loaded, tok


def load_classifier(model: Model, quant: Quant, classes: list[str], seed: int = 0,
                    device: torch.device | None = None):
    """The base model with a fresh linear head of len(classes) outputs, and its tokenizer."""
    clf, tok = _from_pretrained(AutoModelForSequenceClassification, model, quant, seed, device,
                                num_labels=len(classes),
                                id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)})
    clf.config.use_cache = False
    return clf, tok


def load_causal_lm(model: Model, quant: Quant):
    """The base model with its language-model head (for zero-shot prompting), and its tokenizer."""
    lm, tok = _from_pretrained(AutoModelForCausalLM, model, quant)
    return lm.eval(), tok
