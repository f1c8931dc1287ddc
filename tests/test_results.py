"""The docs' numbers are their result files': every table of numbers in README.md, docs/*.md and
bench/results/README.md is what `python bench/tables.py` makes of the committed files, and every file
and link the docs cite exists."""
from __future__ import annotations

import re

import pytest

from conftest import REPO


@pytest.fixture
def tables(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import tables

    return tables


DOCS = ["README.md", *(f"docs/{p.name}" for p in sorted((REPO / "docs").glob("*.md"))), "bench/results/README.md",
        "offline/README.md"]


def test_tables_are_the_result_files(tables):
    assert tables.stale() == [], "run python bench/tables.py"


def test_each_table_is_shown_once(tables):
    shown = [name for names in tables.blocks().values() for name in names]
    assert sorted(shown) == sorted(tables.TABLES)


def test_a_changed_number_in_a_result_file_fails_the_check(tables, monkeypatch):
    load = tables.load

    def changed(path):
        data = load(path)
        if path == "bench/results/gpu-presets/h100-gpu.json":
            data["results"][0]["train_examples_per_s"] *= 2
        return data

    monkeypatch.setattr(tables, "load", changed)
    assert tables.stale() == ["README.md: gpu-headline",
                              "bench/results/README.md: gpu-turnaround, benchmark-runs"]


def test_an_unknown_table_is_refused(tables):
    with pytest.raises(SystemExit, match="no table named 'nope'"):
        tables.render("<!-- table:nope -->\n<!-- /table -->\n", "x.md")


def test_cited_files_exist():
    """Every repository path a doc cites in backquotes is committed (results, scripts, presets, plans)."""
    cited = set()
    for doc in DOCS:
        text = (REPO / doc).read_text(encoding="utf-8")
        roots = "bench|offline|presets|docs|data/ag_news|tests|llmclf|stages"
        cited |= set(re.findall(rf"`((?:{roots})/[\w./-]+\.\w+)`", text))
        cited |= set(re.findall(r"`(bench/results/[\w./-]+/)`", text))  # result folders
    assert cited
    assert sorted(p for p in cited if not (REPO / p).exists()) == []


def anchors(path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    seen, out = {}, set()
    text = re.sub(r"(?ms)^```.*?^```", "", path.read_text(encoding="utf-8"))
    for heading in re.findall(r"(?m)^#+ (.+)$", text):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def test_links_resolve():
    """Every relative link of the docs reaches a file, and a #section of a markdown file one of its headings."""
    broken = []
    for doc in DOCS:
        source = REPO / doc
        text = re.sub(r"(?ms)^```.*?^```", "", source.read_text(encoding="utf-8"))
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (source.parent / target).resolve() if target else source
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path)):
                broken.append(f"{doc}: {target}#{anchor}")
    assert broken == []


def test_base_model_sizes_are_basemodel_py():
    pipeline = (REPO / "docs/pipeline.md").read_text(encoding="utf-8")
    source = (REPO / "llmclf/model/basemodel.py").read_text()
    for alias in ("smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2", "all-mpnet-base-v2"):
        block = source.split(f'"{alias}": PyPIModel(')[1].split("PyPIModel(")[0]
        size = re.search(r'size="([\d.]+ MB)"', block)[1]
        row = next(line for line in pipeline.splitlines() if line.startswith(f"| `{alias}`"))
        assert f" | {size} | " in row, alias
