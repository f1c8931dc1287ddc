#!/usr/bin/env bash
# Bundle for a GPU host without network (offline/README.md): the Python packages such a host usually
# lacks (bitsandbytes, pydantic, gguf), the base models of MODELS and the SmolLM2 tokenizer, as one
# payload in .gpu/ (git-ignored), optionally cut into pieces for a transfer with a size limit.
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
# the versions installed in this checkout's .venv, for the GPU host's Python
pins=$($PY - <<'PY'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in
      ["bitsandbytes", "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "gguf"]))
PY
)
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$GPU_PY" --implementation cp \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/wheels $pins 2>&1 | grep -v "is ignored" || true
for w in .gpu/wheels/*.whl; do unzip -q -o "$w" -d .gpu/payload/site; done
find .gpu/payload/site/bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*cuda130.so' -delete
rm -rf .gpu/wheels

for m in $MODELS; do  # where basemodel looks: LLMCLF_CACHE/<alias>/<file>.gguf, or <alias>/hf/ for a model folder
  src=$($PY -c "from llmclf import basemodel as b
print(b.fetch_gguf('$m') if b.OFFLINE_MODELS['$m'].gguf_name else b.resolve('$m'))")
  mkdir -p ".gpu/payload/cache/$m"
  if [ -d "$src" ]; then cp -r "$src" ".gpu/payload/cache/$m/hf"
  else ln "$src" ".gpu/payload/cache/$m/" 2>/dev/null || cp "$src" ".gpu/payload/cache/$m/"; fi
done
hf=$($PY -c "from llmclf import basemodel; print(basemodel.resolve('smollm2-135m-instruct'))")
mkdir -p .gpu/payload/tokenizer && cp "$hf"/tokenizer* .gpu/payload/tokenizer/

if [ "$PIECE" = 0 ]; then tar -cf .gpu/piece.00 -C .gpu/payload .
else tar -cf - -C .gpu/payload . | split -b "$PIECE" -d -a 2 - .gpu/piece.; fi
rm -rf .gpu/payload
n=0
for piece in .gpu/piece.*; do n=$((n + 1)); mkdir ".gpu/$n" && mv "$piece" ".gpu/$n/piece"; done
for i in $(seq 1 "$n"); do cat ".gpu/$i/piece"; done | sha256sum | cut -d' ' -f1 > ".gpu/$n/sha256"  # the last piece unpacks the whole
echo "$n piece(s): copy .gpu/1 ... .gpu/$n to the GPU host's checkout, then offline/run.sh receive 1 ... $n"
du -sh .gpu/*
