#!/usr/bin/env bash
# Runs on the GPU machine, in the repo root, after bench/gpu_prepare.sh here. Two calls back to
# back on the same machine (each carries one half of .gpu/):
#   bash bench/gpu_run.sh stage                 # carry .gpu/a: packages + GGUF part 1 -> /tmp
#   bash bench/gpu_run.sh run [benchmark args]  # carry .gpu/b: GGUF part 2 + splits, then benchmark
# or, on a machine of several GPUs, `multigpu [args]` in place of `run`: bench/multigpu.py (1 vs 2 GPUs).
# Later calls on the same warm machine need only `run` or `multigpu` (nothing carried).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=/tmp/llmclf-gpu
export PYTHONPATH="$STAGE/site:$PWD" LLMCLF_CACHE="$STAGE/cache" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export NCCL_NVLS_ENABLE=0  # no NVLink multicast: on shared hosts it can take GPUs out of service
case "${1:-}" in
  stage)
    mkdir -p "$STAGE" && cp -r .gpu/a/site "$STAGE/" && cp .gpu/a/model.gguf.part1 "$STAGE/"
    echo "staged in $STAGE";;
  run|multigpu)
    script=bench/benchmark.py; [ "$1" = multigpu ] && script=bench/multigpu.py
    shift
    gguf=$(python3 -c "from llmclf import basemodel; print(basemodel.gguf_path('smollm2-135m-instruct'))")
    if [ -f .gpu/b/model.gguf.part2 ] && [ ! -f "$gguf" ]; then
      mkdir -p "$(dirname "$gguf")" && cat "$STAGE/model.gguf.part1" .gpu/b/model.gguf.part2 > "$gguf"
    fi
    if [ -d .gpu/b/splits ]; then mkdir -p "$STAGE" && rm -rf "$STAGE/splits" && cp -r .gpu/b/splits "$STAGE/splits"; fi
    rm -rf data/splits && mkdir -p data && cp -r "$STAGE/splits" data/splits
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 "$script" "$@";;
  *) echo "usage: $0 stage | run [benchmark args] | multigpu [bench/multigpu.py args]" >&2; exit 2;;
esac
