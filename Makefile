# One command each: `make repro` runs the pipeline, `make test` runs the tests.
# Both create the virtual environment (.venv) when it is missing or pyproject.toml changed.
VENV   ?= .venv
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup repro test check-reference
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# params.yaml as committed: the CPU main job. Other settings: `llmclf preset NAME --exp` (README).
repro: setup
	dvc repro
	dvc metrics show

test: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 pytest $(PYTEST_ARGS)

# The committed reference run is current: every stage of dvc.lock matches the code, params, data and
# outputs in the checkout (after `make repro`, or straight after a clone for the committed metrics).
check-reference: setup
	dvc status --json | python -c "import json, sys; s = json.load(sys.stdin); \
	  [print(k, v) for k, v in s.items()]; sys.exit(1 if s else 0)"
