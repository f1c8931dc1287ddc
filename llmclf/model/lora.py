"""LoRA: the trainable low-rank adapters (and the classification head) on the loaded base model."""
from __future__ import annotations

import torch

from ..core.errors import ModelError
from ..core.params import Lora, Quant, Train
from .loading import CLASSIFIER_HEADS


def for_training(model, lora: Lora, quant: Quant, train: Train):
    """The loaded classifier with LoRA, as `train` sets it up. train.dense_base: a 4-bit base's frozen
    weights dequantized once to the compute dtype first (the adapter still loads onto the 4-bit base)."""
    dense = train.dense_base and quant.mode in ("nf4", "fp4")
    if dense:
        from .dense import dense_for_inference

        model = dense_for_inference(model)
    return add_lora(model, lora, quantized=quant.mode != "none" and not dense,
                    gradient_checkpointing=train.gradient_checkpointing, float32_frozen=train.float32_frozen)


def add_lora(model, lora: Lora, quantized: bool, gradient_checkpointing: bool, float32_frozen: bool = True):
    """LoRA adapters on `model`; a quantized base goes through peft's k-bit preparation, which also
    keeps its frozen 16-bit layers in float32, unless `float32_frozen` is false."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized and float32_frozen:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    targets = lora.target_modules
    if targets != "all-linear":
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        if missing := [t for t in targets if t not in names]:
            # this model's own names (an encoder's: query, key, value, dense), not a decoder's, nor the head's
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                             if isinstance(m, torch.nn.Linear) and n.split(".")[0] not in CLASSIFIER_HEADS})
            raise ModelError(f"lora.target_modules {missing} are not modules of this model; its linear "
                             f"layers are named {', '.join(linear)}: list some of them, or use 'all-linear'")
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias=lora.bias,
                        target_modules=targets if targets == "all-linear" else list(targets),
                        task_type="SEQ_CLS")
    return get_peft_model(model, config)
