"""Data: reading sources, mapping to text/label, seeded sampling, class weights; the sample/split stages."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from llmclf.core import atomic
from llmclf.core.errors import DataError
from llmclf.data import readers, sources, splits
from tiny import Data, Sample, params_with

from conftest import AG_NEWS, REPO
CLASSES = ["alpha", "beta", "gamma"]


def frame(counts: dict[int, int]) -> pd.DataFrame:
    """Rows `c<label> r<i>` in label order, so a text tells its label and every text is unique."""
    rows = [(f"c{label} r{i}", label) for label, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["text", "label"]).astype({"label": "int64"})


def per_split_counts(out: pd.DataFrame) -> dict[str, dict[int, int]]:
    return {s: {int(k): int(v) for k, v in g["label"].value_counts().sort_index().items()}
            for s, g in out.groupby("split")}


# ---------------------------------------------------------------- sampling


def test_balanced_counts_and_disjoint_splits():
    df = frame({0: 20, 1: 20, 2: 20})
    out = splits.sample_splits(df, Sample(train_per_class=5, test_per_class=3, val_per_class=2), CLASSES, seed=1)
    assert list(out.columns) == ["text", "label", "split"]
    assert per_split_counts(out) == {"train": {0: 5, 1: 5, 2: 5}, "test": {0: 3, 1: 3, 2: 3},
                                     "val": {0: 2, 1: 2, 2: 2}}
    # rows come out grouped by split in the order train, test, val, with a fresh index
    assert list(out["split"]) == ["train"] * 15 + ["test"] * 9 + ["val"] * 6
    assert list(out.index) == list(range(30))
    # no row twice, each row is a real source row with its own label
    assert out["text"].is_unique
    assert set(out["text"]) <= set(df["text"])
    assert all(t.startswith(f"c{label} ") for t, label in zip(out["text"], out["label"]))
    texts = {s: set(g["text"]) for s, g in out.groupby("split")}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["val"] and not texts["test"] & texts["val"]
    # each split is shuffled, not left in class order
    train_labels = out.loc[out["split"] == "train", "label"].tolist()
    assert train_labels != sorted(train_labels)
    # each class is shuffled before rows are taken: train is not simply the first 5 rows of every class
    assert texts["train"] != {f"c{label} r{i}" for label in range(3) for i in range(5)}


def test_same_seed_same_rows_and_same_parquet_bytes(tmp_path):
    df = frame({0: 30, 1: 25, 2: 40})
    sample = Sample(train_per_class=10, test_per_class=5, val_per_class=5)
    a = splits.sample_splits(df, sample, CLASSES, seed=7)
    b = splits.sample_splits(df, sample, CLASSES, seed=7)
    pd.testing.assert_frame_equal(a, b)
    atomic.write_parquet(a, tmp_path / "a" / "sampled.parquet")
    atomic.write_parquet(b, tmp_path / "b" / "sampled.parquet")
    assert (tmp_path / "a" / "sampled.parquet").read_bytes() == (tmp_path / "b" / "sampled.parquet").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "sampled.parquet"), a)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["sampled.parquet"]  # no temp leftovers


def test_different_seed_different_order():
    df = frame({0: 30, 1: 30, 2: 30})
    sample = Sample(train_per_class=10, test_per_class=5, val_per_class=5)
    a = splits.sample_splits(df, sample, CLASSES, seed=1)
    b = splits.sample_splits(df, sample, CLASSES, seed=2)
    assert list(a["text"]) != list(b["text"])
    assert per_split_counts(a) == per_split_counts(b)  # same shape, different rows / order


def test_input_frame_is_not_modified():
    df = frame({0: 10, 1: 10, 2: 10})
    copy = df.copy()
    splits.sample_splits(df, Sample(train_per_class=2, test_per_class=2, val_per_class=2), CLASSES, seed=0)
    pd.testing.assert_frame_equal(df, copy)


def test_short_class_raises_naming_class_and_counts():
    df = frame({0: 20, 1: 6, 2: 20})
    with pytest.raises(DataError) as e:
        splits.sample_splits(df, Sample(train_per_class=5, test_per_class=3, val_per_class=2), CLASSES, seed=0)
    msg = str(e.value)
    assert "class 'beta' has 6 rows but sample needs 10" in msg
    assert "5 train + 3 test + 2 val" in msg
    assert "allow_fewer" in msg


def test_class_without_rows_raises():
    with pytest.raises(DataError, match=r"class 'gamma' \(label 2\) has no rows"):
        splits.sample_splits(frame({0: 20, 1: 20}), Sample(train_per_class=2, test_per_class=2, val_per_class=2),
                           CLASSES, seed=0)


def test_allow_fewer_takes_proportionally_fewer():
    df = frame({0: 20, 1: 6, 2: 20})
    sample = Sample(train_per_class=5, test_per_class=3, val_per_class=2, allow_fewer=True)
    out = splits.sample_splits(df, sample, CLASSES, seed=0)
    # beta: 6 of the 10 needed -> floor(5*6/10)=3 train, floor(3*6/10)=1 test, floor(2*6/10)=1 val
    assert per_split_counts(out) == {"train": {0: 5, 1: 3, 2: 5}, "test": {0: 3, 1: 1, 2: 3},
                                     "val": {0: 2, 1: 1, 2: 2}}
    assert out["text"].is_unique


def test_stratified_keeps_class_ratios():
    df = frame({0: 300, 1: 100})
    sample = Sample(mode="stratified", train_fraction=0.8, test_fraction=0.1, val_fraction=0.1)
    out = splits.sample_splits(df, sample, ["big", "small"], seed=3)
    assert per_split_counts(out) == {"train": {0: 240, 1: 80}, "test": {0: 30, 1: 10}, "val": {0: 30, 1: 10}}
    for split, counts in per_split_counts(out).items():
        assert counts[0] == 3 * counts[1], split
    assert out["text"].is_unique and len(out) == 400


def test_stratified_fractions_below_one_leave_rows_out():
    df = frame({0: 40, 1: 20})
    sample = Sample(mode="stratified", train_fraction=0.5, test_fraction=0.25, val_fraction=0.1)
    out = splits.sample_splits(df, sample, ["big", "small"], seed=3)
    assert per_split_counts(out) == {"train": {0: 20, 1: 10}, "test": {0: 10, 1: 5}, "val": {0: 4, 1: 2}}


def test_stratified_fractions_over_one_raise():
    sample = Sample(mode="stratified", train_fraction=0.8, test_fraction=0.2, val_fraction=0.1)
    with pytest.raises(DataError, match=r"fraction add up to 1\.100 > 1"):
        splits.sample_splits(frame({0: 50, 1: 50}), sample, ["a", "b"], seed=0)


def test_stratified_count_is_exact_for_decimal_fractions():
    sample = Sample(mode="stratified", train_fraction=0.57, test_fraction=0.29, val_fraction=0.14)
    out = splits.sample_splits(frame({0: 100, 1: 100}), sample, ["a", "b"], seed=0)
    assert per_split_counts(out) == {"train": {0: 57, 1: 57}, "test": {0: 29, 1: 29}, "val": {0: 14, 1: 14}}


# ---------------------------------------------------------------- class weights


def test_class_weights_imbalanced_by_hand():
    # counts 6/3/1 -> frequencies .6/.3/.1 -> 1/f = 5/3, 10/3, 10 (sum 15) -> 1/9, 2/9, 6/9
    w = splits.class_weights(frame({0: 6, 1: 3, 2: 1}).sample(frac=1, random_state=0), 3)
    assert w == pytest.approx([1 / 9, 2 / 9, 6 / 9], abs=1e-12)
    assert sum(w) == pytest.approx(1.0, abs=1e-12)
    assert isinstance(w, list) and all(isinstance(x, float) for x in w)


def test_class_weights_label_order_not_frequency_order():
    # the rarest class is label 0 here: its weight must stay first
    w = splits.class_weights(frame({0: 1, 1: 4}), 2)
    assert w == pytest.approx([0.8, 0.2], abs=1e-12)


def test_class_weights_balanced_are_equal():
    assert splits.class_weights(frame({0: 7, 1: 7, 2: 7, 3: 7}), 4) == pytest.approx([0.25] * 4, abs=1e-12)


def test_class_weights_missing_class_raises():
    with pytest.raises(DataError, match=r"classes \[.*2.*\] have no training rows"):
        splits.class_weights(frame({0: 3, 1: 3}), 3)


# ---------------------------------------------------------------- to_text_label


def test_joins_text_columns_and_maps_int_labels():
    cfg = Data(text_columns=["title", "body"], label_column="y", classes=CLASSES)
    df = pd.DataFrame({"title": [" Hello ", "Only title", None, "x"], "body": ["world", "", "only body", 5],
                       "y": [0, 2, 1, 0], "extra": [1, 2, 3, 4]})
    out = readers.to_text_label(df, cfg, "src")
    assert list(out.columns) == ["text", "label"]
    assert list(out["text"]) == ["Hello world", "Only title", "only body", "x 5"]
    assert list(out["label"]) == [0, 2, 1, 0]
    assert out["label"].dtype == np.int64


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint16", "Int64"])
def test_integer_labels_of_any_width_become_int64(dtype):
    df = pd.DataFrame({"text": ["a", "b", "c"], "label": pd.Series([2, 0, 1], dtype=dtype)})
    out = readers.to_text_label(df, Data(classes=CLASSES), "src")
    assert out["label"].dtype == np.int64
    assert out["label"].tolist() == [2, 0, 1]


def test_maps_string_labels_via_class_names():
    cfg = Data(classes=["World", "Sports", "Business", "Sci/Tech"])
    df = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": ["Sports", "Sci/Tech", " World ", "Business"]})
    out = readers.to_text_label(df, cfg, "src")
    assert list(out["label"]) == [1, 3, 0, 2]
    assert out["label"].dtype == np.int64


def test_missing_column_is_named():
    cfg = Data(text_columns=["title", "body"], label_column="y", classes=CLASSES)
    with pytest.raises(DataError) as e:
        readers.to_text_label(pd.DataFrame({"title": ["a"], "y": [0]}), cfg, "f.csv")
    msg = str(e.value)
    assert msg.startswith("f.csv: missing column(s) ['body']")
    assert "['title', 'y']" in msg and "data.text_columns" in msg


def test_labels_outside_range_are_named():
    with pytest.raises(DataError) as e:
        readers.to_text_label(pd.DataFrame({"text": list("abcd"), "label": [0, 3, -1, 2]}), Data(classes=CLASSES), "f")
    assert "labels [-1, 3] outside 0..2" in str(e.value)


def test_unknown_string_labels_are_named():
    df = pd.DataFrame({"text": list("abc"), "label": ["alpha", "delta", "Beta"]})
    with pytest.raises(DataError) as e:
        readers.to_text_label(df, Data(classes=CLASSES), "f")
    assert "labels ['Beta', 'delta'] are not in data.classes ['alpha', 'beta', 'gamma']" in str(e.value)


@pytest.mark.parametrize("bad", ["", "   ", None, np.nan, "\t\n"], ids=["empty", "spaces", "none", "nan", "ws"])
def test_empty_text_rows_are_errors(bad):
    df = pd.DataFrame({"text": ["fine", bad, "also fine"], "label": [0, 1, 2]})
    with pytest.raises(DataError, match=r"f: 1 row\(s\) with empty text \(first at row 1\)"):
        readers.to_text_label(df, Data(classes=CLASSES), "f")


def test_no_rows_is_an_error():
    df = pd.DataFrame({"text": pd.Series([], dtype=str), "label": pd.Series([], dtype="int64")})
    with pytest.raises(DataError, match=r"^f: no rows$"):
        readers.to_text_label(df, Data(classes=CLASSES), "f")


# ---------------------------------------------------------------- local files


def local_cfg(source, **kw) -> Data:
    return Data(source=source if isinstance(source, list) else str(source), classes=CLASSES, **kw)


def test_read_file_csv_parquet_jsonl(tmp_path):
    df = pd.DataFrame({"text": ["one, with comma", "two \"quoted\"", "three"], "label": [0, 1, 2]})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_parquet(tmp_path / "b.parquet", index=False)
    df.to_json(tmp_path / "c.jsonl", orient="records", lines=True)
    assert readers.is_agnews_csv(tmp_path / "a.csv") is False
    for name in ["a.csv", "b.parquet", "c.jsonl"]:
        got = readers.read_file(tmp_path / name, Data(classes=CLASSES))
        assert list(got.columns) == ["text", "label"], name
        assert list(got["text"]) == list(df["text"]), name
        assert list(got["label"]) == [0, 1, 2], name


def test_csv_texts_that_look_like_missing_values_are_kept(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('text,label\nNone,0\nNA,1\nnull,2\n', encoding="utf-8")
    out = readers.to_text_label(readers.read_file(path, Data(classes=CLASSES)), Data(classes=CLASSES), str(path))
    assert list(out["text"]) == ["None", "NA", "null"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_numeric_looking_texts_are_kept_verbatim(tmp_path, suffix):
    df = pd.DataFrame({"text": ["007", "1.50"], "label": [0, 1]})
    path = tmp_path / f"train{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    out = readers.to_text_label(readers.read_file(path, Data(classes=CLASSES)), Data(classes=CLASSES), str(path))
    assert list(out["text"]) == ["007", "1.50"]


def test_read_file_non_utf8_csv(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes("text,label\ncaf\xe9 au lait,0\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        readers.read_file(path, Data(classes=CLASSES))
    assert str(e.value).startswith(f"{path}: not UTF-8 text")
    assert "re-encode it as UTF-8" in str(e.value)


def test_read_file_broken_parquet(tmp_path):
    path = tmp_path / "train.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"cannot be read as parquet"):
        readers.read_file(path, Data(classes=CLASSES))


def test_fetch_local_folder(tmp_path):
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["alpha", "beta", "gamma"]}).to_csv(tmp_path / "train.csv",
                                                                                      index=False)
    pd.DataFrame({"text": ["d", "e"], "label": [2, 0]}).to_json(tmp_path / "test.jsonl", orient="records",
                                                                lines=True)
    (tmp_path / "classes.txt").write_text("alpha\nbeta\ngamma\n\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    frames, info = sources.fetch(local_cfg(tmp_path))
    assert sorted(frames) == ["test", "train"]
    assert list(frames["train"]["label"]) == [0, 1, 2] and list(frames["train"]["text"]) == ["a", "b", "c"]
    assert list(frames["test"]["label"]) == [2, 0]
    assert info["source"] == str(tmp_path) and info["kind"] == "local"
    assert info["files"] == [
        {"path": str(tmp_path / n), "sha256": hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()}
        for n in ["test.jsonl", "train.csv"]]


def test_fetch_list_of_files(tmp_path):
    pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}).to_parquet(tmp_path / "train.parquet", index=False)
    pd.DataFrame({"text": ["c"], "label": [2]}).to_parquet(tmp_path / "holdout.parquet", index=False)
    frames, _ = sources.fetch(local_cfg([str(tmp_path / "train.parquet"), str(tmp_path / "holdout.parquet")]))
    assert sorted(frames) == ["holdout", "train"]
    assert len(frames["train"]) == 2 and list(frames["holdout"]["label"]) == [2]


def test_classes_txt_disagreeing_is_an_error(tmp_path):
    pd.DataFrame({"text": ["a"], "label": [0]}).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "classes.txt").write_text("alpha\ngamma\nbeta\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        sources.read_local(local_cfg(tmp_path))
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'classes.txt'} lists ['alpha', 'gamma', 'beta']")
    assert "data.classes is ['alpha', 'beta', 'gamma']" in msg


def test_folder_without_train_split(tmp_path):
    pd.DataFrame({"text": ["a"], "label": [0]}).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError) as e:
        sources.fetch(local_cfg(tmp_path))
    assert "no 'train' split (got ['test'])" in str(e.value)


def bad_source(d: Path, case: str) -> Path:
    if case == "missing":
        return d / "missing"
    if case == "empty-folder":
        (d / "empty").mkdir()
        return d / "empty"
    if case == "txt-file":
        (d / "train.txt").write_text("text,label\na,0\n")
        return d / "train.txt"
    (d / "train.csv").write_text("text,label\na,0\n")  # same-stem
    (d / "train.jsonl").write_text('{"text": "b", "label": 1}\n')
    return d


@pytest.mark.parametrize("case, expect", [
    ("missing", "no such file or folder"),
    ("empty-folder", r"no \.csv, \.parquet or \.jsonl files"),
    ("txt-file", "unsupported file type '.txt'"),
    ("same-stem", "two files map to the same split name"),
])
def test_bad_local_sources(tmp_path, case, expect):
    with pytest.raises(DataError, match=expect):
        sources.fetch(local_cfg(bad_source(tmp_path, case)))


BAD_FILES = [
    # id, file name, its content (bytes, or a frame written as Parquet), what the message says
    ("empty-label-cell", "train.csv", b"text,label\na,0\nb,\nc,1\n", r"1 row\(s\) without a label \(first at row 1\)"),
    ("nan-label-parquet", "train.parquet", pd.DataFrame({"text": ["a", "b"], "label": [0, np.nan]}),
     r"1 row\(s\) without a label \(first at row 1\)"),
    ("headerless-id-text-label", "train.csv", b"1,the match,1\n2,the shares,2\n",
     r"missing column\(s\) \['text', 'label'\].*first row looks like data.*add a header row"),
    ("label-out-of-range", "train.csv", b"text,label\na,0\nb,7\n", r"labels \[7\] outside 0\.\.2"),
    ("label-name-case", "train.csv", b"text,label\na,alpha\nb,Alpha\n", r"labels \['Alpha'\] are not in data\.classes"),
    ("empty-text", "train.csv", b"text,label\n,0\n", r"1 row\(s\) with empty text"),
    ("header-only", "train.csv", b"text,label\n", r"no rows$"),
    ("not-utf8", "train.csv", b"text,label\ncaf\xe9,0\n", r"not UTF-8 text .*re-encode it as UTF-8"),
    ("garbage-parquet", "train.parquet", b"PAR1 not really", r"cannot be read as parquet"),
    ("jsonl-not-json", "train.jsonl", b"{text: a, label: 0}\n", r"cannot be read as jsonl"),
    # the type of what was read: named as the cause, not as a missing column or an unknown class
    ("numbers-as-text", "train.parquet", pd.DataFrame({"text": [1, 2], "label": [0, 1]}),
     r"column 'text' holds int64 values, not text \(first at row 0: 1\)"),
    ("lists-as-text", "train.jsonl", b'{"text": "a", "label": 0}\n{"text": ["b"], "label": 1}\n',
     r"column 'text' holds list values, not text \(first at row 1"),
    ("float-labels", "train.parquet", pd.DataFrame({"text": ["a", "b"], "label": [0.0, 1.0]}),
     r"label 0\.0 at row 0 \(float\); labels are whole numbers 0\.\.2 or the names in data\.classes"),
    ("bool-labels", "train.parquet", pd.DataFrame({"text": ["a", "b"], "label": [True, False]}), r"label True at row 0 \(bool\)"),
    ("mixed-labels", "train.jsonl", b'{"text": "a", "label": "alpha"}\n{"text": "b", "label": 1}\n',
     r"label 1 at row 1 \(int\); .*one kind per column"),
    ("json-array-of-numbers", "train.json", b"[1, 2, 3]", r"missing column\(s\) \['text', 'label'\]"),
    ("parquet-named-csv", "train.csv", b"PAR1\x15\x00\x15", r"not csv text \(NUL bytes: a binary file.*name it \.parquet"),
    ("utf16-csv", "train.csv", "text,label\na,0\n".encode("utf-16"), r"not csv text \(NUL bytes: a binary file, or text in UTF-16\)"),
]


@pytest.mark.parametrize("name, content, message", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_files_name_the_file_and_the_fix(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content.to_parquet(path, index=False)
    with pytest.raises(DataError, match=rf"^{path}: {message}"):
        sources.fetch(local_cfg(path))


def test_a_json_array_is_read_as_rows(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps([{"text": "a", "label": 0}, {"text": "b", "label": 1}]))
    frames, _ = sources.fetch(local_cfg(tmp_path / "train.json"))
    assert frames["train"].to_dict("list") == {"text": ["a", "b"], "label": [0, 1]}


def test_evaluate_splits_that_leave_none_is_one_line(tmp_path):
    pd.DataFrame({"text": ["a"], "label": [0]}).to_parquet(tmp_path / "test.parquet")
    with pytest.raises(DataError, match=r"evaluate.splits \['official_test'\]: none of them is in .*; add test or val"):
        splits.read_eval_splits(tmp_path, ["official_test"])


def test_is_local():
    assert sources.is_local("./x") and sources.is_local("../shared/ag_news") and sources.is_local("/abs/path")
    assert sources.is_local(["a.csv"])
    assert not sources.is_local("fancyzhx/ag_news")


# ---------------------------------------------------------------- the original AG News CSV, real rows


@pytest.fixture
def agnews_head(tmp_path) -> tuple[Path, list[list[str]]]:
    with open(AG_NEWS / "train.csv", encoding="utf-8", newline="") as f:
        lines = [next(f) for _ in range(40)]
    path = tmp_path / "train.csv"
    path.write_text("".join(lines), encoding="utf-8", newline="")
    rows = list(csv.reader(io.StringIO("".join(lines), newline="")))
    assert len(rows) == 40 and all(len(r) == 3 for r in rows)
    return path, rows


def test_agnews_csv_real_rows(agnews_head):
    path, rows = agnews_head
    assert readers.is_agnews_csv(path) is True
    df = readers.read_file(path, Data(classes=CLASSES))
    assert list(df.columns) == ["text", "label"] and len(df) == 40
    assert df["label"].dtype == np.int64
    assert list(df["label"]) == [int(r[0]) - 1 for r in rows]
    assert set(df["label"]) <= {0, 1, 2, 3} and set(df["label"]) == {0, 1, 2, 3}
    label, title, description = rows[2]
    assert df["text"][2] == (title + " " + description).strip()
    assert df["label"][2] == int(label) - 1
    assert list(df["text"]) == [(t + " " + d).strip() for _, t, d in rows]


def test_agnews_empty_and_na_titles(agnews_head, tmp_path):
    _, rows = agnews_head
    edited = [[rows[0][0], "", rows[0][2]], [rows[1][0], "NA", rows[1][2]], rows[2]]
    path = tmp_path / "edited" / "train.csv"
    path.parent.mkdir()
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(edited)
    df = readers.read_file(path, Data(classes=CLASSES))
    assert df["text"][0] == rows[0][2].strip()
    assert df["text"][1] == ("NA " + rows[1][2]).strip()  # "NA" is a title, not a missing value


def test_agnews_folder_with_its_classes_txt(agnews_head, tmp_path):
    path, rows = agnews_head
    (path.parent / "classes.txt").write_bytes((AG_NEWS / "classes.txt").read_bytes())
    frames, info = sources.fetch(Data(source=str(path.parent)))  # default classes: World, Sports, Business, Sci/Tech
    assert sorted(frames) == ["train"] and len(frames["train"]) == 40
    assert list(frames["train"]["label"]) == [int(r[0]) - 1 for r in rows]
    assert [f["path"] for f in info["files"]] == [str(path)]


# ---------------------------------------------------------------- the hub, offline


def test_hub_revision_offline_fails_fast(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    start = time.monotonic()
    with pytest.raises(DataError) as e:
        sources.hub_revision("fancyzhx/ag_news", None)
    assert time.monotonic() - start < 5
    msg = str(e.value)
    assert msg.startswith("data.source 'fancyzhx/ag_news': the dataset hub cannot be reached")
    assert "OfflineModeIsEnabled" in msg
    assert "local files" in msg and "data.source=data/ag_news" in msg


# ---------------------------------------------------------------- the sample and split stages


def write_params(folder: Path, train_per_class: int, **groups: dict) -> None:
    """The stages' params.yaml: the project's, with this test's seed and sample sizes (and `groups`' keys)."""
    p = params_with(base={"seed": 5}, sample={"train_per_class": train_per_class, "test_per_class": 3,
                                              "val_per_class": 2}, **groups)
    (folder / "params.yaml").write_text(yaml.safe_dump(p.model_dump(), sort_keys=False), encoding="utf-8")


def run_stage(name: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def raw_project(tmp_path: Path, train_per_class: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = frame({0: 12, 1: 12, 2: 12, 3: 12})
    test = frame({0: 2, 1: 3, 2: 1, 3: 4}).assign(text=lambda d: "official " + d["text"])
    (tmp_path / "data" / "raw").mkdir(parents=True)
    train.to_parquet(tmp_path / "data" / "raw" / "train.parquet", index=False)
    test.to_parquet(tmp_path / "data" / "raw" / "test.parquet", index=False)
    write_params(tmp_path, train_per_class)
    return train, test


def dot_entries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.startswith("."))


def test_sample_and_split_stages(tmp_path):
    train, test = raw_project(tmp_path, train_per_class=5)
    r = run_stage("sample", tmp_path)
    assert r.returncode == 0, r.stderr
    sampled = pd.read_parquet(tmp_path / "data" / "sampled.parquet")
    assert len(sampled) == 4 * (5 + 3 + 2)
    r = run_stage("split", tmp_path)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "data" / "splits"
    assert sorted(p.name for p in out.iterdir()) == ["official_test.parquet", "summary.json", "test.parquet",
                                                    "train.parquet", "val.parquet"]
    splits = {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "val", "test", "official_test")}
    for s, df in splits.items():
        assert list(df.columns) == ["text", "label"], s
    assert {s: len(df) for s, df in splits.items()} == {"train": 20, "val": 8, "test": 12, "official_test": 10}
    pd.testing.assert_frame_equal(splits["official_test"], test)
    seen = [set(splits[s]["text"]) for s in ("train", "val", "test")]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert set().union(*seen) <= set(train["text"])

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    names = ["World", "Sports", "Business", "Sci/Tech"]
    assert summary["splits"] == {
        "train": {"rows": 20, "classes": dict.fromkeys(names, 5)},
        "val": {"rows": 8, "classes": dict.fromkeys(names, 2)},
        "test": {"rows": 12, "classes": dict.fromkeys(names, 3)},
        "official_test": {"rows": 10, "classes": dict(zip(names, [2, 3, 1, 4]))},
    }
    assert summary["class_weights"] == pytest.approx([0.25] * 4, abs=1e-12)
    assert sum(summary["class_weights"]) == pytest.approx(1.0, abs=1e-12)
    assert "split: train: 20 rows" in r.stdout
    assert dot_entries(tmp_path / "data") == []

    # the same params again give byte-identical outputs, and so does another training seed
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    sampled_bytes = (tmp_path / "data" / "sampled.parquet").read_bytes()
    for extra in ({}, {"train": {"seed": 7}}):
        write_params(tmp_path, 5, **extra)
        assert run_stage("sample", tmp_path).returncode == 0 and run_stage("split", tmp_path).returncode == 0
        assert (tmp_path / "data" / "sampled.parquet").read_bytes() == sampled_bytes
        assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_sample_stage_short_class_fails_cleanly(tmp_path):
    raw_project(tmp_path, train_per_class=10)  # 10 + 3 + 2 = 15 > 12 rows per class
    r = run_stage("sample", tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: class 'World' has 12 rows but sample needs 15")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "data" / "sampled.parquet").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw"]
    assert dot_entries(tmp_path / "data") == []


def test_fetch_drops_duplicates_and_train_rows_seen_in_other_splits(tmp_path):
    pd.DataFrame({"text": ["a", "a", "b", "c", "shared"], "label": [0, 0, 1, 2, 1]}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": ["shared", "d"], "label": [1, 0]}).to_csv(tmp_path / "test.csv", index=False)
    frames, info = sources.fetch(Data(source=str(tmp_path), classes=CLASSES))
    assert list(frames["train"]["text"]) == ["a", "b", "c"]
    assert list(frames["test"]["text"]) == ["shared", "d"]
    assert info["duplicates_dropped"] == {"test": 0, "train": 1}
    assert info["train_rows_also_in_other_splits_dropped"] == 1


@pytest.mark.parametrize("content, expect", [
    ("", "cannot be read as csv"),                                  # an empty file
    ("text;label\nhello;World\n", r"missing column\(s\) \['text', 'label'\]; it has \['text;label'\]"),  # wrong delimiter
])
def test_empty_file_and_wrong_delimiter(tmp_path, content, expect):
    (tmp_path / "train.csv").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=expect):
        sources.fetch(Data(source=str(tmp_path), classes=CLASSES))


def test_one_class_source_cannot_be_sampled():
    df = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": [0] * 30})
    with pytest.raises(DataError, match=rf"class '{CLASSES[1]}' \(label 1\) has no rows"):
        splits.sample_splits(df, Sample(train_per_class=5, test_per_class=2, val_per_class=2), CLASSES, seed=0)
