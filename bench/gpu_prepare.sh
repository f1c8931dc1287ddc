#!/usr/bin/env bash
# Build .gpu/ (git-ignored) for a GPU machine without network, which has torch, transformers, peft,
# accelerate and pandas but lacks bitsandbytes, pydantic, gguf, the base models and the data:
# one payload, cut into pieces .gpu/1, .gpu/2, ... that each fit one device call (64 MiB a call).
#   MODELS="smollm2-135m-instruct gemma-3-270m all-minilm-l6-v2" bash bench/gpu_prepare.sh   # default: SmolLM2 only
# Payload: Python packages (bitsandbytes cut to its CUDA 13.0 library), the GGUFs (or model folders) of MODELS, the
# AG News copy (../shared/ag_news) and the SmolLM2 tokenizer (bench/llama8b.py's token ids).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GPU_PY=${GPU_PY:-3.12}   # the GPU machine's Python
MODELS=${MODELS-smollm2-135m-instruct}
PIECE=${PIECE:-60M}      # + the working tree (about 1 MiB, more with DVC outputs in it) per call

rm -rf .gpu && mkdir -p .gpu/payload/site .gpu/payload/shared .gpu/wheels
# the versions installed here, for the GPU machine's Python
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
cp -r ../shared/ag_news .gpu/payload/shared/

tar -cf - -C .gpu/payload . | split -b "$PIECE" -d -a 2 - .gpu/piece.
rm -rf .gpu/payload
n=0
for piece in .gpu/piece.*; do n=$((n + 1)); mkdir ".gpu/$n" && mv "$piece" ".gpu/$n/piece"; done
cat .gpu/*/piece | sha256sum | cut -d' ' -f1 > ".gpu/$n/sha256"  # the last piece unpacks the whole
echo "$n pieces: carry .gpu/1 ... .gpu/$n, one a call, back to back (bench/gpu_run.sh receive)"
du -sh .gpu/*
