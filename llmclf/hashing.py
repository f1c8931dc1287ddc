"""File content hashes: what provenance, pinned downloads and checkpoint stamps compare."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
