#!/usr/bin/env bash
# Build .gpu/ (git-ignored) for a GPU machine without network, which has torch, transformers, peft
# and accelerate but lacks bitsandbytes, pydantic, gguf, the base model and the data. Each half
# stays under the 64 MiB a device call may carry (README "Running on a GPU"):
#   .gpu/a  Python packages (bitsandbytes cut to its CUDA 13.0 library) + the GGUF's first half
#   .gpu/b  the GGUF's second half + data/splits (run `dvc repro split` first)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GPU_PY=${GPU_PY:-3.12}   # the GPU machine's Python
[ -f data/splits/summary.json ] || { echo "error: no data/splits; run 'dvc repro split' first" >&2; exit 2; }

rm -rf .gpu && mkdir -p .gpu/a/site .gpu/b .gpu/wheels
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
for w in .gpu/wheels/*.whl; do unzip -q -o "$w" -d .gpu/a/site; done
find .gpu/a/site/bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*cuda130.so' -delete
rm -rf .gpu/wheels

gguf=$($PY -c "from llmclf import basemodel; print(basemodel.fetch_gguf('smollm2-135m-instruct'))")
half=$(( ($(stat -c %s "$gguf") + 1) / 2 ))
head -c "$half" "$gguf" > .gpu/a/model.gguf.part1
tail -c +"$((half + 1))" "$gguf" > .gpu/b/model.gguf.part2
cp -r data/splits .gpu/b/splits
du -sh .gpu/a .gpu/b
