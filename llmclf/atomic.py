"""Atomic outputs: write to a temporary sibling, then rename, so a failed run leaves nothing half-written."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from .errors import UserError


@contextmanager
def atomic_path(target: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target`, on error it is removed.
    An existing `target` of the other kind (a folder for a file, or anything but a regular file or folder)
    is refused: replacing it would delete what the caller did not create."""
    target = Path(target)
    if target.exists() and not (target.is_dir() if is_dir else target.is_file()):
        kind = "a folder" if target.is_dir() else "a file" if target.is_file() else "not a regular file"
        raise UserError(f"{target}: is {kind}; give the path of a {'folder' if is_dir else 'file'} to write")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    work = tmp / target.name
    if is_dir:
        work.mkdir()
    try:
        yield work
        _plain_modes(work)
        if target.is_dir() and not target.is_symlink():
            # a directory cannot be renamed over a non-empty one: move the old aside first
            old = tmp / ".old"
            os.replace(target, old)
        os.replace(work, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _plain_modes(path: Path) -> None:
    """The modes a plain open() or mkdir() gives (umask applied): writers that go through a private
    temporary file (safetensors) leave 0600, which a teammate on a shared machine cannot read."""
    mask = os.umask(0)
    os.umask(mask)
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def write_json(obj, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_text(text: str, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_parquet(df: pd.DataFrame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
