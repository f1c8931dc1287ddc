"""File content hashes: what provenance, pinned downloads, checkpoint stamps and adapters (their weights and
their base's) compare."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.cache
def weights_sha256(path: str) -> str:
    """The identity of a base model's weights: one sha256 over its config and weight files (names and
    contents). `path` is a folder, or a hub id whose files are in the hub's local cache."""
    folder = Path(path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(path, local_files_only=True))
    files = sorted(f for f in folder.iterdir() if f.name == "config.json" or f.suffix in (".safetensors", ".bin"))
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name} {sha256(f)}\n".encode())
    return h.hexdigest()
