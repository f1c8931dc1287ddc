"""The model: the base model resolved and loaded (quantized, or as dense layers), LoRA on it, the adapter folder,
and batches of token rows."""
