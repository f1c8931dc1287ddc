"""Ensembles: trained models whose temperature-scaled probabilities are averaged.

A member is a folder holding a trained adapter (`adapter/`, as `models/adapter`) and the temperature
the evaluate stage fitted for it on val (`calibration.json`); `llmclf member save NAME` makes one in
`models/members/NAME` from the workspace's trained model. An ensemble's probabilities are the mean of
each model's softmax(logits / T). Its parameter count is the sum of every model's own: each runs its
whole model (base, LoRA, head) at prediction time, so a base shared by two members counts twice.
"""
from __future__ import annotations

import gc
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import atomic_path
from ..core.errors import UserError
from ..core.params import Inference
from ..model.adapter import load_adapter, read_checked_info
from . import calibration, inference, metrics

MEMBERS = Path("models/members")  # the evaluate stage's dep in dvc.yaml, which holds the members
TEACHERS = Path("models/teachers")  # the train stage's dep, which holds distillation's teachers
ADAPTER, CALIBRATION = "adapter", "calibration.json"  # inside a member folder
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a folder name, as `dvc exp` names experiments


@dataclass(frozen=True)
class Member:
    folder: Path
    classes: list[str]
    base: str
    max_length: int
    temperature: float

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def adapter(self) -> Path:
        return self.folder / ADAPTER


def member(folder: str | Path) -> Member:
    """A member folder checked without loading its model: a trained adapter and the temperature fitted for it."""
    folder = Path(folder)
    # a teacher (train.teachers) is saved into models/teachers: the fixes say how
    teacher = folder.resolve().parent == TEACHERS.resolve()
    role, save_it = ("teacher", "llmclf member save NAME --teacher") if teacher else ("member", "llmclf member save NAME")
    if not (folder / ADAPTER).is_dir():
        raise UserError(f"{folder}: not {'a teacher' if teacher else 'an ensemble member'} (no {ADAPTER}/ in it); "
                        f"`{save_it}` makes one from the trained model")
    info = read_checked_info(folder / ADAPTER)  # a damaged adapter is named as such, not as its calibration's mismatch
    temperature, _ = calibration.load_temperature(folder / ADAPTER, folder / CALIBRATION, required=True,
                                                  fix=f"restore the {role} (`dvc checkout`), or save it again "
                                                      f"(`{save_it} --force`)")
    return Member(folder, info["classes"], info["model"]["name"], info["model"]["max_length"], temperature)


def members(folders: list[str | Path], classes: list[str], adapter: str | Path | None = None) -> list[Member]:
    """The members in `folders`, all checked before any is loaded; their classes must be `classes`, in
    that order: probabilities of different class lists cannot be averaged. Each model counts once: a folder
    given twice under any spelling, or holding the fine-tuned `adapter` itself, would weigh double."""
    seen = {Path(adapter).resolve(): str(adapter)} if adapter is not None else {}
    for f in folders:
        key = (Path(f) / ADAPTER).resolve()
        if key in seen:
            raise UserError(f"{f}: the same model as {seen[key]}; give each model of the ensemble once")
        seen[key] = str(f)
    found = [member(f) for f in folders]
    for m in found:
        if m.classes != list(classes):
            raise UserError(f"{m.folder}: classes {m.classes} differ from the fine-tuned model's {list(classes)}; "
                            "an ensemble's models must share one class list")
    return found


def save(name: str, adapter: str | Path, calibration_file: str | Path, force: bool = False,
         root: Path = MEMBERS) -> Path:
    """Copy a trained adapter and the calibration fitted for it into root/NAME, replacing it only with `force`."""
    if not NAME.fullmatch(name):
        raise UserError(f"{name!r}: not a member name; use letters, digits, '.', '_' and '-'")
    read_checked_info(adapter)
    calibration.load_temperature(adapter, calibration_file, required=True)  # fitted for this very adapter
    target = root / name
    if target.exists() and not force:
        raise UserError(f"{target}: exists; give another name, or --force to replace it")
    with atomic_path(target, is_dir=True) as out:
        shutil.copytree(adapter, out / ADAPTER)
        shutil.copy2(calibration_file, out / CALIBRATION)
    return target


def saved(root: Path = MEMBERS) -> list[Path]:
    """The member folders in `root`, by name (a placeholder file or `dvc add`'s .dvc files are not members)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def parameters(model) -> int:
    """A loaded model's parameters as it was trained: base, LoRA and head. A 4-bit weight counts the
    values it holds (its unpacked shape, not its packed bytes); the frozen copy of the original head
    that peft keeps beside the trained one is never run, so it is not counted. Call it before
    `inference.classifier` merges LoRA into the weights."""
    total = 0
    for name, p in model.named_parameters():
        if ".original_module." in name:
            continue
        shape = getattr(getattr(p, "quant_state", None), "shape", None)
        total += math.prod(shape) if shape is not None else p.numel()
    return total


def mean_probabilities(probs: list[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities: the mean of its models' (rows: texts, columns: classes)."""
    return np.mean(np.stack(probs), axis=0)


def member_probabilities(m: Member, texts: dict[str, list[str]], settings: Inference, max_length: int | None = None,
                         calibrated: bool = True) -> tuple[dict[str, np.ndarray], int]:
    """One member's probabilities of each group of texts (temperature-scaled unless not `calibrated`), and
    its parameter count. It reads `max_length` tokens (default: its own training max_length); its model
    is freed afterwards, so members are held in memory one at a time."""
    model, tok, _ = load_adapter(m.adapter)
    count = parameters(model)
    predict = inference.classifier(model, tok, settings, max_length or m.max_length)
    probs = {}
    for key, group in texts.items():
        logits = predict(group, f"{m.name}, {key}")
        if not np.isfinite(logits).all():  # NaN would be averaged into every model's probabilities
            raise UserError(f"{m.adapter}: the model scores texts as NaN or inf; its weights are broken")
        probs[key] = calibration.probabilities(logits, m.temperature if calibrated else 1.0)
    del model, predict
    gc.collect()
    return probs, count


def _check_in(folders: list[str], root: Path, key: str, stage: str, command: str) -> None:
    """A stage's model folders must lie in the folder dvc.yaml lists as its dep: a change reruns it."""
    for f in folders:
        if Path(f).resolve().parent != root.resolve():
            raise UserError(f"{key}: {f} is not a folder in {root}, which dvc.yaml lists as the {stage} stage's "
                            f"dep; `{command}` saves one there")


def soft_labels(folders: list[str], texts: list[str], classes: list[str]) -> tuple[np.ndarray, list[str], int]:
    """Distillation's targets, for the train stage: the mean temperature-scaled probabilities of the teachers
    in `folders` (in models/teachers, the stage's dep) on `texts`, their names and their parameter count.
    Each runs as the evaluate stage scored it (its calibration.json): `inference.*` is not the train stage's
    param, and the teacher is its dep."""
    _check_in(folders, TEACHERS, "train.teachers", "train", "llmclf member save NAME --teacher")
    found = members(folders, classes)
    probs, total = [], 0
    for m in found:
        settings = calibration.inference_settings(m.adapter, m.folder / CALIBRATION)
        p, count = member_probabilities(m, {"train": texts}, settings)
        probs.append(p["train"])
        total += count
    return mean_probabilities(probs).astype(np.float32), [m.name for m in found], total


@dataclass
class Scores:
    evaluation: metrics.Evaluation  # the ensemble's scores, predictions and reports of each split
    record: dict  # metrics/eval.json's `ensemble`: models, parameters, member names, each split's scores


def evaluate(folders: list[str], frames: dict[str, pd.DataFrame], probs: dict[str, np.ndarray],
             classes: list[str], own_parameters: int, settings: Inference) -> Scores:
    """The evaluate stage's ensemble: the fine-tuned model (its temperature-scaled `probs` of each split,
    `own_parameters`) and the members in `folders`, which must lie in models/members, the stage's dep."""
    _check_in(folders, MEMBERS, "evaluate.members", "evaluate", "llmclf member save NAME")
    found = members(folders, classes)
    texts = {split: df["text"].tolist() for split, df in frames.items()}
    all_probs, total = [probs], own_parameters
    for m in found:
        p, count = member_probabilities(m, texts, settings)
        all_probs.append(p)
        total += count
    # log of the mean: metrics read scores through a softmax, which gives the mean back
    mean = {s: np.log(np.maximum(mean_probabilities([p[s] for p in all_probs]), np.finfo(float).tiny))
            for s in frames}
    ev = metrics.evaluate(frames, mean, classes)
    record = {"models": len(all_probs), "parameters": total, "members": [m.name for m in found]} | ev.scores
    return Scores(ev, record)
