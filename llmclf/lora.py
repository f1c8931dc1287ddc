"""LoRA: the trainable low-rank adapters (and the classification head) on the loaded base model."""
from __future__ import annotations

from .errors import ModelError
from .params import Lora


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
            raise ModelError(f"lora.target_modules {missing} are not modules of this model; "
                             "use names such as q_proj, k_proj, v_proj, o_proj or 'all-linear'")
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias=lora.bias,
                        target_modules=targets if targets == "all-linear" else list(targets),
                        task_type="SEQ_CLS")
    return get_peft_model(model, config)
