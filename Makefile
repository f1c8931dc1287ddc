# One command each: `make repro` runs the pipeline, `make test` runs the tests.
# Both create the virtual environment (.venv) when it is missing or pyproject.toml changed.
VENV   ?= .venv
# presets/<name>.yaml applied onto params.yaml before `dvc repro`: the offline AG News copy and
# the 2-core CPU profile. On a GPU with the hub: `make repro PRESET=`, the tutorial's recipe.
PRESET ?= local cpu
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup repro test
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

repro: setup
	python -m llmclf.presets $(PRESET)
	dvc repro
	dvc metrics show

test: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 pytest $(PYTEST_ARGS)
