"""Dense inference weights: the trained classifier as plain layers, 4-bit weights dequantized and LoRA merged."""
from __future__ import annotations

import sys

import torch

from ..core.errors import ModelError


@torch.no_grad()
def dense_for_inference(model):
    """The same classifier as plain dense layers: every 4-bit weight dequantized to the compute dtype
    (what the 4-bit forward does on every call) with its LoRA delta added, the trained head unwrapped,
    the whole model in that dtype (layers kept in float32 for training are cast to it). Works on a
    PeftModel or a bare quantized model (as a frozen base to train LoRA on: train.dense_base); returns
    the underlying transformers model."""
    import bitsandbytes as bnb

    if "peft" in sys.modules:
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer
        from peft.utils import ModulesToSaveWrapper
    else:  # no LoRA without peft: a bare base model (the baseline stage) skips its ~290 modules' import
        PeftModel = LoraLayer = ModulesToSaveWrapper = ()  # isinstance(x, ()) is False

    if any(isinstance(m, bnb.nn.Linear8bitLt) for m in model.modules()):
        raise ModelError("dense inference does not undo int8 quantization; "
                         "set inference.dense: false with quant.mode int8")
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
        # no random init to overwrite: it would cost time and move the RNG that LoRA's init draws from next
        out = torch.nn.utils.skip_init(torch.nn.Linear, layer.in_features, layer.out_features,
                                       bias=layer.bias is not None, device=w.device, dtype=dtype)
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
