# One command each: `make repro` runs the pipeline, `make test` runs the tests.
# Both create the virtual environment (.venv) from requirements.lock when it is missing or changed.
VENV   ?= .venv
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup repro test lock check-reference
setup: $(VENV)/.installed

# requirements.lock: the exact versions and sha256 hashes that made the committed reference run
# (Linux x86-64, CPython 3.11, torch's CPU build). pip refuses any file whose hash differs. Where the
# package index lacks torch's CPU build: PIP_FIND_LINKS=https://download.pytorch.org/whl/cpu/torch/
# make setup. On another platform or Python, `pip install -e .` takes pyproject.toml's ranges.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# params.yaml as committed: the CPU main job. Other settings: `llmclf preset NAME --exp` (README).
repro: setup
	dvc repro
	python bench/tables.py --show cpu-reference

test: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 pytest $(PYTEST_ARGS)

# Newest versions pyproject.toml's ranges allow, then the reference run re-recorded with them:
# commit requirements.lock, dvc.lock and metrics/ together.
lock: setup
	pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras --extra dev \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml
	$(MAKE) setup
	dvc repro --force

# The committed reference run is what the code produces: every stage rerun (in a fresh clone DVC would
# skip baseline, whose inputs come back unchanged), then bench/reference.py compares with the commit.
check-reference: setup
	dvc repro --force
	python bench/reference.py
