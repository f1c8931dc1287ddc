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

from .errors import UserError, writing

_deferred: list[tuple[Path, Path]] | None = None  # within together(): the (work, target) renames left to its end


@contextmanager
def atomic_path(target: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target`, on error it is removed.
    An existing `target` of the other kind (a folder for a file, or anything but a regular file or folder)
    is refused: replacing it would delete what the caller did not create. A full disk, a read-only file
    system or denied access while writing is one line naming `target` (errors.writing)."""
    target = Path(target)
    if target.exists() and not (target.is_dir() if is_dir else target.is_file()):
        kind = "a folder" if target.is_dir() else "a file" if target.is_file() else "not a regular file"
        raise UserError(f"{target}: is {kind}; give the path of a {'folder' if is_dir else 'file'} to write")
    prefix = f".{target.name}."
    with writing(target, temp=target.parent / prefix):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        work = tmp / target.name
        try:
            if is_dir:
                work.mkdir()
            yield work
            _plain_modes(work)
            if _deferred is not None:  # together() replaces it, then removes its temporary folder
                _deferred.append((work, target))
                return
            _replace(work, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _plain_modes(path: Path) -> None:
    """The modes a plain open() or mkdir() gives (umask applied): writers that go through a private
    temporary file (safetensors) leave 0600, which a teammate on a shared machine cannot read."""
    mask = os.umask(0)
    os.umask(mask)
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def _replace(work: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        # a directory cannot be renamed over a non-empty one: move the old aside first
        os.replace(target, work.parent / ".old")
    os.replace(work, target)


@contextmanager
def together() -> Iterator[None]:
    """Within: every atomic_path replaces its target at the block's end, all of them one after the other (renames,
    which need no space), so a stage that fails while writing its outputs leaves each of them as it was."""
    global _deferred
    _deferred = []
    try:
        yield
        for work, target in _deferred:
            with writing(target):
                _replace(work, target)
    finally:
        for work, _ in _deferred:
            shutil.rmtree(work.parent, ignore_errors=True)
        _deferred = None


def write_json(obj, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_text(text: str, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_parquet(df: pd.DataFrame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
