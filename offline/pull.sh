#!/usr/bin/env bash
# In a checkout with DVC: the experiments that `offline/run.sh push` packed on a GPU host become DVC
# experiments of the checkout, through `dvc exp pull` (their commits into git, their outputs into the DVC
# cache). Then, as with any experiment: dvc exp show, dvc exp apply NAME, dvc exp push origin NAME.
#   bash offline/pull.sh DIR          # DIR/exps.tar, or its pieces DIR/exps.tar.00, .01, ...
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
pack=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
tmp=$(mktemp -d)
trap '"$PY" -m dvc remote remove --local offline > /dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
cat "$pack"/exps.tar* | tar -xf - -C "$tmp"
"$PY" -m dvc remote add --local --force offline "$tmp/dvc"
"$PY" -m dvc exp pull --all-commits --remote offline "$tmp/git"
