"""Memory levers for training: activations offloaded to host memory, and batches run as token-capped chunks."""
from __future__ import annotations

import contextlib

import torch

from ..model.batching import LENGTHS, TOKENS, token_batches


def offload_to_host(devices: tuple[str, ...] = ("cuda",), min_bytes: int = 1 << 20):
    """Within it, a tensor that autograd saves for backward (an activation on one of `devices`, of at least
    `min_bytes`; never a parameter) is copied to host memory, pinned where CUDA is, and copied back when
    backward needs it. GPU memory then holds the weights and one layer's working set; the copies ride the
    compute stream (ordered, no host wait), so a step that is bound by kernel launches hides them."""
    pin = torch.cuda.is_available()

    def pack(t: torch.Tensor):
        if (t.device.type not in devices or isinstance(t, torch.nn.Parameter)
                or t.numel() * t.element_size() < min_bytes):
            return t
        host = torch.empty(t.size(), dtype=t.dtype, layout=t.layout, pin_memory=pin)
        host.copy_(t, non_blocking=pin)
        return t.device, host

    def unpack(packed):
        if isinstance(packed, torch.Tensor):
            return packed
        device, host = packed
        return host.to(device, non_blocking=pin)

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack)


class BoundedMemory:
    """A Trainer mixin. `max_batch_tokens` > 0: a batch of more padded tokens runs as row chunks of at most
    that many, each chunk's loss its share of the batch's, gradients accumulated: the same update in bounded
    memory (the loss's class provides `_loss_denominator`). `offload_activations`: what backward needs waits
    in host memory (offload_to_host) during `_forward`."""

    def __init__(self, *args, max_batch_tokens: int = 0, offload_activations: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_batch_tokens = max_batch_tokens
        self.offload_activations = offload_activations

    def _forward(self, model, inputs):
        offload = self.offload_activations and torch.is_grad_enabled()
        with offload_to_host() if offload else contextlib.nullcontext():
            return super()._forward(model, inputs)

    def _chunks(self, inputs, lengths: list[int] | None = None) -> list[tuple[torch.Tensor, dict]] | None:
        """The batch as row chunks within max_batch_tokens, longest rows first, each cut to its own longest
        row and carrying the batch's loss denominator, with the batch rows it holds; None if it fits whole
        (known from its shape, without waiting for the GPU). `lengths`: the rows' token counts as collate
        gives them; without, they are read back from the mask (on a GPU, a wait for it)."""
        mask = inputs["attention_mask"]
        if not self.max_batch_tokens or mask.numel() <= self.max_batch_tokens:
            return None
        lengths = lengths or mask.sum(dim=1).tolist()
        denominator = self._loss_denominator(inputs["labels"])
        chunks = []
        for idx in token_batches(lengths, len(lengths), self.max_batch_tokens):
            rows, width = torch.as_tensor(idx.copy(), device=mask.device), lengths[idx[0]]
            chunk = {k: v[rows, :width] if k in TOKENS else v[rows] for k, v in inputs.items()}
            chunks.append((rows, chunk | {"loss_denominator": denominator}))
        return chunks

    def training_step(self, model, inputs, num_items_in_batch=None):
        lengths = inputs.pop(LENGTHS, None)
        chunks = self._chunks(inputs, lengths=lengths)
        if chunks is None:
            return super().training_step(model, inputs, num_items_in_batch)
        loss = 0
        for i, (_, chunk) in enumerate(chunks):  # under DDP, gradients are averaged once, after the last chunk
            with self.accelerator.no_sync(model) if i < len(chunks) - 1 else contextlib.nullcontext():
                loss = loss + super().training_step(model, chunk, num_items_in_batch)
        return loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        lengths = inputs.pop(LENGTHS, None)
        chunks = self._chunks(inputs, lengths=lengths)
        if chunks is None:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        parts = [super(BoundedMemory, self).prediction_step(model, chunk, prediction_loss_only, ignore_keys)
                 for _, chunk in chunks]
        loss = sum(part[0] for part in parts)  # each chunk's share of the batch's loss
        if prediction_loss_only:
            return loss, None, None
        chunked = torch.cat([part[1] for part in parts])
        logits = torch.empty_like(chunked)
        logits[torch.cat([rows for rows, _ in chunks])] = chunked  # back to the batch's own row order
        return loss, logits, inputs["labels"]
