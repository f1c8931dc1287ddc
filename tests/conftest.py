import os
from pathlib import Path

import pytest

from tiny import build_tiny_bert, build_tiny_llama

REPO = Path(__file__).resolve().parents[1]
AG_NEWS = REPO / "data" / "ag_news"  # the AG News copy in the project

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # fail fast: tests never reach a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
