#!/usr/bin/env bash
# On a GPU host without network, in the checkout, after offline/prepare.sh (offline/README.md).
#   bash offline/run.sh receive N          # .gpu/N copied into the checkout; N = 1, 2, ...;
#                                          # the last piece checks the whole and unpacks it
#   bash offline/run.sh bench [args]       # bench/benchmark.py on the AG News splits
#   bash offline/run.sh multigpu [args]    # bench/multigpu.py (1 vs 2 GPUs) on the same splits
#   bash offline/run.sh sweep [args]       # offline/sweep.py: experiments side by side, packed for import
#   bash offline/run.sh dvc ARGS           # DVC: dvc exp run --queue ..., dvc queue start -j N, dvc exp show
#   bash offline/run.sh push DIR [--piece-size SIZE] [EXP... | -A]   # the experiments of HEAD (or EXP...,
#                                          # or all) as DVC pushes them, packed in DIR/exps.tar (or pieces
#                                          # .00, .01, ...) for offline/pull.sh on a machine with the checkout
#   bash offline/run.sh start CMD [args]   # any command above, detached: it outlives the shell
#                                          # that started it (a new session); log and pid in $JOB
#   bash offline/run.sh wait SECONDS       # until the started job ends or SECONDS pass; its log's tail
#   bash offline/run.sh fetch PATTERN [DIR]  # copy files matching /tmp/llmclf-gpu/PATTERN to DIR ($OUT)
#   bash offline/run.sh ensemble NAME...   # sweep runs of one split as an ensemble: the evaluate stage of
#                                          # the first, the others its members, on val and official test,
#                                          # in a copy of the first ($SWEEP/ensemble, metrics/eval.json)
#   bash offline/run.sh distill NAME TEACHER...  # sweep run NAME trained again with the TEACHER runs'
#                                          # soft labels (train.teachers), then scored on val and official
#                                          # test, in a copy of NAME ($SWEEP/distill, log distill.log)
#   bash offline/run.sh py SCRIPT [args]   # any script with the packages, models and data in place
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${LLMCLF_GPU:-/tmp/llmclf-gpu}  # where receive unpacks the bundle
SWEEP=${SWEEP:-$STAGE/sweep}  # other folders (SWEEP=, JOB=): a second started sweep beside the first
JOB=${JOB:-$STAGE/job}
export PYTHONPATH="$STAGE/site:$PWD" LLMCLF_CACHE="$STAGE/cache" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export NCCL_NVLS_ENABLE=0  # no NVLink multicast: on shared hosts it can take GPUs out of service
export HF_DATASETS_OFFLINE=1 DVC_NO_ANALYTICS=1
# Bytecode in one folder of ours, compiled by receive: an image whose packages carry none (built with
# PYTHONDONTWRITEBYTECODE=1, or read-only) would otherwise compile torch's sources again in every stage
[ -d "$STAGE/pycache" ] && export PYTHONPYCACHEPREFIX="$STAGE/pycache"
# the commands DVC calls by name: `dvc` (queue workers, each experiment's run) and `python` (the stages)
mkdir -p "$STAGE/bin" && export PATH="$STAGE/bin:$PATH"
py=$(command -v python3)
for tool in "dvc:$py -m dvc" "python:$py"; do  # replaced whole, not rewritten: a running worker may exec it
  printf '#!/bin/sh\nexec %s "$@"\n' "${tool#*:}" > "$STAGE/bin/.${tool%%:*}.$$"
  chmod +x "$STAGE/bin/.${tool%%:*}.$$" && mv "$STAGE/bin/.${tool%%:*}.$$" "$STAGE/bin/${tool%%:*}"
done
set_params() {  # params.yaml of the current folder, with each KEY=VALUE override applied
  python3 -c "import sys, yaml; from llmclf.cli import presets; from llmclf.core import params
doc = params.read_yaml('params.yaml')
for item in sys.argv[1:]: presets.override(doc, item)
open('params.yaml', 'w').write(yaml.safe_dump(doc, sort_keys=False))" "$@"
}
# $SWEEP/DEST: a copy of sweep run NAME with this checkout's code (the run's copy may predate members and
# teachers), each OTHER run saved in it as KIND (members or teachers); $list: their folders, comma-separated
copy_with() {  # DEST KIND NAME OTHER...
  local out="$SWEEP/$1" kind=$2 flag=() saved=() n
  [ "$kind" = teachers ] && flag=(--teacher)
  rm -rf "$out"; cp -r "$SWEEP/$3" "$out"; rm -rf "$out"/{run.log,manifest.json,llmclf,stages}
  cp -r llmclf stages "$out/"
  for n in "${@:4}"; do
    (cd "$out" && python3 -m llmclf.cli member save "$n" "${flag[@]}" --adapter "$SWEEP/$n/models/adapter" \
      --calibration "$SWEEP/$n/models/calibration.json")
    saved+=("models/$kind/$n")
  done
  list=$(IFS=,; echo "${saved[*]}")
}
cmd=${1:-}; shift || true
case "$cmd" in
  receive)
    n=$1; mkdir -p "$STAGE"
    [ "$n" = 1 ] && : > "$STAGE/payload.tar"
    cat ".gpu/$n/piece" >> "$STAGE/payload.tar"
    if [ -f ".gpu/$n/sha256" ]; then
      [ "$(sha256sum < "$STAGE/payload.tar" | cut -d' ' -f1)" = "$(cat ".gpu/$n/sha256")" ] \
        || { echo "error: payload sha256 mismatch: send the pieces again from 1" >&2; exit 2; }
      # xz-compressed; unpacked by Python's lzma, so the host needs no xz program
      python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="tar")' \
        "$STAGE/payload.tar" "$STAGE" && rm "$STAGE/payload.tar"
      # the bundle's packages and the host's, compiled once here, not by every stage's imports
      export PYTHONPYCACHEPREFIX="$STAGE/pycache"
      python3 -m compileall -q -j 0 "$STAGE/site" $(python3 -c 'import site; print(*site.getsitepackages())') \
        > /dev/null || true
      echo "unpacked:"; du -sh "$STAGE"/*
    else
      echo "received piece $n"
    fi;;
  bench|multigpu)
    # in a copy under $STAGE: the checkout can change (or be copied over again) while the run goes on
    rm -rf "$STAGE/project" && mkdir -p "$STAGE/project"
    cp -r --parents llmclf stages presets bench data/ag_news params.yaml dvc.yaml "$STAGE/project/" && cd "$STAGE/project"
    export PYTHONPATH="$STAGE/site:$PWD"
    python3 -c "import yaml; from llmclf.cli import presets
text = yaml.safe_dump(presets.compose(['tutorial']), sort_keys=False)  # read params.yaml before it is rewritten
open('params.yaml', 'w').write(text)"  # the tutorial's rows
    for s in fetch sample split; do python3 "stages/$s.py"; done
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    script=bench/benchmark.py; [ "$cmd" = multigpu ] && script=bench/multigpu.py
    python3 "$script" "$@";;
  sweep)
    mkdir -p "$SWEEP"; python3 offline/sweep.py --work "$SWEEP" "$@";;
  dvc)
    # each stage runs in its experiment's copy of the project (.dvc/tmp/exps/...) and imports that copy's llmclf
    export PYTHONPATH="$STAGE/site:."
    dvc "$@";;
  push)
    dest=$1; shift; piece=0
    [ "${1:-}" = --piece-size ] && { piece=$2; shift 2; }
    out="$STAGE/exps"; rm -rf "$out" "$dest"/exps.tar*; mkdir -p "$out" "$dest"
    export PYTHONPATH="$STAGE/site"
    # DVC's transport into folders: a bare git repository for the experiments' commits (made with dulwich:
    # the host may lack git) and a DVC remote for their outputs
    python3 -c "import sys; from dulwich.repo import Repo; Repo.init_bare(sys.argv[1], mkdir=True)" "$out/git"
    dvc remote add --local --force offline "$out/dvc"
    dvc exp push --remote offline "$out/git" "$@"
    dvc remote remove --local offline
    if [ "$piece" = 0 ]; then tar -cf "$dest/exps.tar" -C "$out" git dvc
    else tar -cf - -C "$out" git dvc | split -b "$piece" -d -a 2 - "$dest/exps.tar."; fi
    rm -rf "$out"; ls -la "$dest"/exps.tar*;;
  start)
    mkdir -p "$JOB"; setsid nohup bash "$PWD/offline/run.sh" "$@" > "$JOB/log" 2>&1 < /dev/null &
    echo $! > "$JOB/pid"; sleep 10; cat "$JOB/log";;
  wait)
    end=$((SECONDS + $1))
    while kill -0 "$(cat "$JOB/pid")" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 5; done
    kill -0 "$(cat "$JOB/pid")" 2>/dev/null && echo "== still running" || echo "== ended"
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
    tail -n 30 "$JOB/log"
    for f in "$SWEEP"/*/run.log; do [ -f "$f" ] || continue
      echo "== $f"; tail -c 300 "$f" | tr '\r' '\n' | tail -n 2; done;;
  fetch)
    dest=${2:-${OUT:-$PWD/fetched}}; mkdir -p "$dest"
    for f in "$STAGE"/$1; do cp "$f" "$dest/"; done; ls -la "$dest";;
  ensemble)
    copy_with ensemble members "$@"
    cd "$SWEEP/ensemble" && set_params "evaluate.members=[$list]" 'evaluate.splits=[val, official_test]'
    python3 stages/evaluate.py 2>&1 | tee evaluate.log | grep -E '^(ensemble of .*, )?(val|official_test): ';;
  distill)
    copy_with distill teachers "$@"
    cd "$SWEEP/distill" && rm -rf models/adapter && set_params "train.teachers=[$list]" 'evaluate.splits=[val, official_test]'
    { python3 stages/train.py && python3 stages/evaluate.py; } 2>&1 | tee distill.log | grep -E '^(val|official_test): ';;
  py)
    python3 "$@";;
  *) echo "usage: $0 receive N | bench [args] | multigpu [args] | sweep [args] | dvc ARGS | push DIR [--piece-size SIZE] [EXP...] | start CMD [args] | wait SECONDS | fetch PATTERN | ensemble NAME... | distill NAME TEACHER... | py SCRIPT [args]" >&2; exit 2;;
esac
