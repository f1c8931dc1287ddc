#!/usr/bin/env bash
# Bundle for a GPU host without network (offline/README.md): the Python packages such a host usually
# lacks (DVC and DVCLive with their dependencies, bitsandbytes, pydantic, gguf) and, over the host's own,
# transformers, peft and accelerate with theirs at this checkout's versions (the lock's), the base models of
# MODELS and the SmolLM2 tokenizer, as one payload in .gpu/ (git-ignored), optionally cut into pieces
# for a transfer with a size limit.
#   bash offline/prepare.sh                          # one piece: .gpu/1
#   bash offline/prepare.sh --piece-size 60M         # pieces .gpu/1, .gpu/2, ... of at most 60 MiB
#   MODELS="smollm2-135m-instruct all-minilm-l6-v2" bash offline/prepare.sh   # default: SmolLM2 only
# The project itself (code, params, data/ag_news) travels as the repository; offline/run.sh receive
# reassembles the pieces on the GPU host.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GPU_PY=${GPU_PY:-3.12}   # the GPU host's Python version
MODELS=${MODELS-smollm2-135m-instruct}
PIECE=0  # bytes a piece (split(1) sizes: 60M, 1G); 0: one piece
while [ $# -gt 0 ]; do
  case "$1" in
    --piece-size) PIECE=$2; shift 2;;
    *) echo "usage: $0 [--piece-size SIZE]" >&2; exit 2;;
  esac
done

rm -rf .gpu && mkdir -p .gpu/payload/site .gpu/wheels
# the versions installed in this checkout's .venv, for the GPU host's Python: DVC and DVCLive with every
# package they need (on the host's Python, Linux), and what the stages need beyond a torch install; torch
# and numpy stay the host's (its CUDA build, and what its other compiled packages were built against)
pins=$($PY - "$GPU_PY" <<'PY'
import sys
from importlib.metadata import distribution
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

host = {"python_version": sys.argv[1], "python_full_version": f"{sys.argv[1]}.0", "sys_platform": "linux",
        "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
        "implementation_name": "cpython", "platform_python_implementation": "CPython"}
extras: dict[str, set[str]] = {}
todo = [(name, set()) for name in ("dvc", "dvclive", "bitsandbytes", "pydantic", "gguf", "transformers", "peft",
                                   "accelerate")]
while todo:
    name, wanted = todo.pop()
    key = canonicalize_name(name)
    if key in ("torch", "numpy") or key in extras and wanted <= extras[key]:
        continue
    extras[key] = extras.get(key, set()) | wanted
    for req in map(Requirement, distribution(name).requires or []):
        if req.marker is None or any(req.marker.evaluate(host | {"extra": e}) for e in extras[key] or {""}):
            todo.append((req.name, set(req.extras)))
print(" ".join(f"{n}=={distribution(n).version}" for n in sorted(extras)))
PY
)
# wheels for the host where PyPI has them; a package published as source only is built while preparing
# the bundle, and must be pure Python (a wheel for any Python)
python3 -m pip download --quiet --no-deps --prefer-binary --python-version "$GPU_PY" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/wheels $pins 2>&1 | grep -v "is ignored" || true
for sdist in .gpu/wheels/*.tar.gz; do
  [ -e "$sdist" ] || continue
  python3 -m pip wheel --quiet --no-deps -w .gpu/wheels "$sdist" && rm "$sdist"
done
if ls .gpu/wheels/*.whl | grep -v -e 'manylinux[^/]*\.whl$' -e '-none-any\.whl$'; then
  echo "error: the wheels above are not for the GPU host (Python $GPU_PY, manylinux x86_64)" >&2; exit 2
fi
[ "$(ls .gpu/wheels/*.whl | wc -l)" = "$(echo $pins | wc -w)" ] || { echo "error: a package is missing" >&2; exit 2; }
for w in .gpu/wheels/*.whl; do unzip -q -o "$w" -d .gpu/payload/site; done
find .gpu/payload/site/bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*cuda130.so' -delete
rm -rf .gpu/wheels

for m in $MODELS; do  # where basemodel looks: LLMCLF_CACHE/<alias>/<file>.gguf, or <alias>/hf/ for a model folder
  src=$($PY -c "from llmclf.model import basemodel as b
print(b.fetch_gguf('$m') if b.OFFLINE_MODELS['$m'].gguf_name else b.resolve('$m'))")
  mkdir -p ".gpu/payload/cache/$m"
  if [ -d "$src" ]; then cp -r "$src" ".gpu/payload/cache/$m/hf"
  else ln "$src" ".gpu/payload/cache/$m/" 2>/dev/null || cp "$src" ".gpu/payload/cache/$m/"; fi
done
hf=$($PY -c "from llmclf.model import basemodel; print(basemodel.resolve('smollm2-135m-instruct'))")
mkdir -p .gpu/payload/tokenizer && cp "$hf"/tokenizer* .gpu/payload/tokenizer/

# xz: the packages shrink to about a fifth (the models barely), so fewer pieces travel
if [ "$PIECE" = 0 ]; then tar -cf - -C .gpu/payload . | xz -T0 -6 > .gpu/piece.00
else tar -cf - -C .gpu/payload . | xz -T0 -6 | split -b "$PIECE" -d -a 2 - .gpu/piece.; fi
rm -rf .gpu/payload
n=0
for piece in .gpu/piece.*; do n=$((n + 1)); mkdir ".gpu/$n" && mv "$piece" ".gpu/$n/piece"; done
for i in $(seq 1 "$n"); do cat ".gpu/$i/piece"; done | sha256sum | cut -d' ' -f1 > ".gpu/$n/sha256"  # the last piece unpacks the whole
echo "$n piece(s): copy .gpu/1 ... .gpu/$n to the GPU host's checkout, then offline/run.sh receive 1 ... $n"
du -sh .gpu/*
