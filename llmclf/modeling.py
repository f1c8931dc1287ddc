"""Load the base model as a sequence classifier or causal LM (quantized as `quant` says), add LoRA, reload adapters."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                          BitsAndBytesConfig)

from . import basemodel
from .params import Lora, Model, Quant

# Heads stay in full precision: bitsandbytes would otherwise quantize a head that has a bias. A skip
# list of our own replaces transformers' default one, which holds the language-model head: name it too.
HEAD_MODULES = ["score", "classifier", "lm_head"]
ADAPTER_INFO = "llmclf.json"  # what the adapter needs to rebuild its base: model, quant, labels, pad


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def peak_gpu_memory() -> dict[str, float]:
    """The CUDA allocator's peak since the process started, for the metrics; empty on CPU."""
    if not torch.cuda.is_available():
        return {}
    return {"peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}


def compute_dtype(model: Model) -> torch.dtype:
    if model.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, model.dtype)


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
        raise basemodel.ModelError(f"{path}: the tokenizer has neither an eos nor a pad token")
    tok.padding_side = "right"
    return tok


def _no_cpu_bf16_repack(model) -> None:
    """bitsandbytes' CPU AVX512-BF16 weight repacking, done on the first eval forward, silently
    corrupts later gradients: keep 4-bit layers in their plain packed form."""
    import bitsandbytes as bnb

    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False


def _from_pretrained(auto_class, model: Model, quant: Quant, seed: int = 0, on: torch.device | None = None, **kwargs):
    """The base model through `auto_class`, quantized as `quant` says, and its tokenizer. All of it on
    one device, `on` (default: the GPU if any): under DDP each process's own GPU (a 4-bit model is not moved)."""
    on = on or device()
    path = basemodel.resolve(model.name)
    dtype = compute_dtype(model)
    tok = load_tokenizer(path, model.trust_remote_code)
    torch.manual_seed(seed)  # weights not in the checkpoint (a fresh head) start from it
    try:
        loaded = auto_class.from_pretrained(
            path, quantization_config=quant_config(quant, dtype), dtype=dtype, device_map={"": on},
            attn_implementation=model.attn_implementation, trust_remote_code=model.trust_remote_code,
            use_safetensors=not model.allow_pickle_weights, **kwargs)
    except OSError as e:
        hint = ("Only safetensors weights are loaded; set model.allow_pickle_weights: true to accept "
                "pickle (.bin) files you trust." if "safetensors" in str(e) else
                "Offline, use a local folder, a .gguf file or an alias such as smollm2-135m-instruct.")
        raise basemodel.ModelError(f"model.name {model.name!r}: cannot load ({str(e)[:300]}). {hint}") from None
    loaded.config.pad_token_id = tok.pad_token_id
    if quant.mode in ("nf4", "fp4") and on.type == "cpu":
        _no_cpu_bf16_repack(loaded)
    return loaded, tok


def load_classifier(model: Model, quant: Quant, classes: list[str], seed: int = 0, on: torch.device | None = None):
    """The base model with a fresh linear head of len(classes) outputs, and its tokenizer."""
    clf, tok = _from_pretrained(AutoModelForSequenceClassification, model, quant, seed, on, num_labels=len(classes),
                                id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)})
    clf.config.use_cache = False
    return clf, tok


def load_causal_lm(model: Model, quant: Quant):
    """The base model with its language-model head (for zero-shot prompting), and its tokenizer."""
    lm, tok = _from_pretrained(AutoModelForCausalLM, model, quant)
    return lm.eval(), tok


def add_lora(model, lora: Lora, quantized: bool, gradient_checkpointing: bool, float32_frozen: bool = True):
    """LoRA adapters on `model`; a quantized base goes through peft's k-bit preparation, which also
    keeps its frozen 16-bit layers in float32, unless `float32_frozen` is false."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized and float32_frozen:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = lora.target_modules
    if targets != "all-linear":
        missing = [t for t in targets if t not in names]
        if missing:
            raise basemodel.ModelError(f"lora.target_modules {missing} are not modules of this model; "
                                       "use names such as q_proj, k_proj, v_proj, o_proj or 'all-linear'")
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias=lora.bias,
                        target_modules=targets if targets == "all-linear" else list(targets),
                        task_type="SEQ_CLS")
    return get_peft_model(model, config)


@torch.no_grad()
def dense_for_inference(model):
    """The same classifier as plain dense layers: every 4-bit weight dequantized to the compute dtype
    (what the 4-bit forward does on every call) with its LoRA delta added, the trained head unwrapped,
    the whole model in that dtype (layers kept in float32 for training are cast to it). Works on a
    PeftModel or a bare quantized model (as a frozen base to train LoRA on: train.dense_base); returns
    the underlying transformers model."""
    import bitsandbytes as bnb
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from peft.utils import ModulesToSaveWrapper

    if any(isinstance(m, bnb.nn.Linear8bitLt) for m in model.modules()):
        raise basemodel.ModelError("dense inference does not undo int8 quantization; "
                                   "set evaluate.dense_inference: false with quant.mode int8")
    adapter = model.active_adapter if isinstance(model, PeftModel) else None
    inner = model.base_model.model if isinstance(model, PeftModel) else model
    # the 4-bit layers' compute dtype; without them, the norms' (BERT: LayerNorm)
    dtype = next((m.compute_dtype for m in inner.modules() if isinstance(m, bnb.nn.Linear4bit)), None) \
        or next(p.dtype for n, p in inner.named_parameters() if "norm" in n.lower())

    def dense(layer, delta=None):
        w = (bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
             if isinstance(layer, bnb.nn.Linear4bit) else layer.weight.data).float()
        if delta is not None:
            w = w + delta.float()
        out = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                              device=w.device, dtype=dtype)
        out.weight.copy_(w)
        if layer.bias is not None:
            out.bias.copy_(layer.bias)
        return out

    modules = dict(inner.named_modules())  # the tree as it was, so replaced parents are still found
    for name, module in modules.items():
        parent_name, _, child = name.rpartition(".")
        parent = modules[parent_name]
        if isinstance(parent, (LoraLayer, ModulesToSaveWrapper)):
            continue  # its parent is replaced as a whole
        if isinstance(module, LoraLayer):
            setattr(parent, child, dense(module.get_base_layer(), module.get_delta_weight(adapter)))
        elif isinstance(module, ModulesToSaveWrapper):
            setattr(parent, child, module.modules_to_save[adapter])
        elif isinstance(module, bnb.nn.Linear4bit):
            setattr(parent, child, dense(module))
    # no longer quantized: let .to(dtype) and save_pretrained treat it as a plain model
    inner.hf_quantizer = inner.quantization_method = None
    inner.is_loaded_in_4bit = inner.is_loaded_in_8bit = inner.is_quantized = False
    if hasattr(inner.config, "quantization_config"):
        del inner.config.quantization_config
    return inner.to(dtype).eval()


def save_adapter_info(folder: Path, model: Model, quant: Quant, classes: list[str], tok) -> None:
    info = {"model": model.model_dump(), "quant": quant.model_dump(), "classes": list(classes),
            "pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id}
    (folder / ADAPTER_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def load_adapter(folder: str | Path, base: str | None = None):
    """Rebuild base + trained adapter (head included) from an adapter folder, for inference.
    `base` overrides the model.name recorded at training (e.g. the same model in another folder)."""
    from peft import PeftModel

    folder = Path(folder)
    info_file = folder / ADAPTER_INFO
    if not info_file.is_file():
        raise basemodel.ModelError(f"{folder}: no trained adapter here (missing {ADAPTER_INFO}); "
                                   "run `dvc repro train` first")
    info = json.loads(info_file.read_text(encoding="utf-8"))
    model_params = Model(**(info["model"] | ({"name": base} if base else {})))
    model, tok = load_classifier(model_params, Quant(**info["quant"]), info["classes"])
    if tok.pad_token_id != info["pad_token_id"]:
        raise basemodel.ModelError(f"{folder}: trained with pad id {info['pad_token_id']}, "
                                   f"but the base tokenizer pads with {tok.pad_token_id}")
    try:
        model = PeftModel.from_pretrained(model, folder)
    except (RuntimeError, ValueError, KeyError) as e:  # shapes or module names that are not this base's
        raise basemodel.ModelError(f"{folder}: the adapter does not fit base model {model_params.name!r} "
                                   f"(trained on {info['model']['name']!r}): {str(e).splitlines()[0][:300]}") from None
    model.eval()
    return model, tok, info["classes"]


def save_adapter(model, tok, folder: Path, p, train_metrics: dict) -> None:
    """Adapter weights (LoRA + the trained head), tokenizer, what rebuilds the base, and a model card."""
    import yaml

    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    save_adapter_info(folder, p.model, p.quant, p.data.classes, tok)
    recipe = {k: getattr(p, k).model_dump() for k in ("model", "quant", "lora", "train")}
    card = [
        "---", "library_name: peft", "pipeline_tag: text-classification", "tags: [llmclf, qlora, lora]", "---",
        f"# {p.model.name}: LoRA sequence classifier", "",
        f"Labels: {', '.join(f'{i} = {c}' for i, c in enumerate(p.data.classes))}. "
        f"Pad token: `{tok.pad_token}` (id {tok.pad_token_id}).", "",
        "Load with `llmclf.modeling.load_adapter(folder)`, which rebuilds the base model as trained.", "",
        "## Validation metrics", "", "| metric | value |", "|---|---|",
        # scores only, no timings: the same run gives the same bytes
        *[f"| {k} | {v} |" for k, v in train_metrics.items() if k.startswith(("val_", "train_loss"))], "",
        "## Recipe (params.yaml)", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).rstrip(), "```", "",
    ]
    (folder / "README.md").write_text("\n".join(card), encoding="utf-8")
