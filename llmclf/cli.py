"""`llmclf` command: use a trained classifier.

    llmclf predict texts.csv -o predictions.jsonl     # classify a file (CSV, JSONL, plain lines) or stdin
    llmclf export -o models/merged                    # a standalone bf16 model, adapter merged in
    llmclf report --rev main                          # metrics/report.md for a pull request
    llmclf preset gpu --exp -n gpu-run                # a preset of presets/ as a DVC experiment
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import presets
from .errors import UserError

ADAPTER = "models/adapter"
CALIBRATION = "models/calibration.json"  # the evaluate stage's temperature for that adapter


def read_texts(source: str, text_column: str) -> pd.DataFrame:
    """Rows with `id` and `text` from a CSV, JSONL or plain-lines file, or stdin ('-')."""
    if source == "-":
        lines = sys.stdin.read().splitlines()
        df = pd.DataFrame({"text": lines})
    else:
        path = Path(source)
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        try:
            if path.suffix.lower() == ".csv":
                df = pd.read_csv(path, dtype=str, keep_default_na=False)
            elif path.suffix.lower() in (".jsonl", ".json"):
                df = pd.read_json(path, lines=True, dtype=False)
            else:
                df = pd.DataFrame({"text": path.read_text(encoding="utf-8").splitlines()})
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except ValueError as e:
            raise UserError(f"{path}: cannot be read: {e}") from None
    if text_column not in df.columns:
        raise UserError(f"{source}: no {text_column!r} column (it has {list(df.columns)}); use --text-column")
    texts = df[text_column].astype(str)
    keep = texts.str.strip() != ""
    if not keep.any():
        raise UserError(f"{source}: no texts to classify")
    ids = df["id"] if "id" in df.columns else pd.Series(range(len(df)))
    return pd.DataFrame({"id": ids[keep].to_numpy(), "text": texts[keep].to_numpy()})


def predict(args) -> None:
    from . import calibration, inference, modeling

    rows = read_texts(args.input, args.text_column)
    model, tok, classes = modeling.load_adapter(args.adapter, base=args.base)
    temperature, note = ((1.0, "not temperature-scaled (--no-calibration)") if args.no_calibration
                         else calibration.load_temperature(args.adapter, args.calibration or CALIBRATION,
                                                           required=args.calibration is not None))
    model = modeling.dense_for_inference(model)
    logits = inference.predict_logits(model, tok, rows["text"].tolist(), args.batch_size, args.max_length,
                                      max_tokens=args.max_batch_tokens)
    probs = calibration.probabilities(logits, temperature)
    labels = np.array(classes)[probs.argmax(axis=1)]
    if args.format == "csv":
        out = pd.DataFrame({"id": rows["id"], "label": labels}
                           | {f"p_{c}": probs[:, i].round(5) for i, c in enumerate(classes)})
        text = out.to_csv(index=False)
    else:
        text = "".join(json.dumps({"id": _plain(i), "label": lab,
                                   "probs": {c: round(float(p), 5) for c, p in zip(classes, ps)}}) + "\n"
                       for i, lab, ps in zip(rows["id"], labels, probs))
    _write(text, args.output)
    print(f"predict: {len(rows)} texts -> {args.output}; probabilities {note}", file=sys.stderr)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _write(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    from .atomic import write_text

    try:
        write_text(text, output)
    except OSError as e:
        raise UserError(f"{output}: cannot write ({e.strerror})") from None


def export(args) -> None:
    import torch

    from . import modeling
    from .atomic import atomic_path

    model, tok, classes = modeling.load_adapter(args.adapter)
    merged = modeling.dense_for_inference(model).to(torch.bfloat16)
    merged.config.dtype = torch.bfloat16
    with atomic_path(args.output, is_dir=True) as out:
        merged.save_pretrained(out)
        tok.save_pretrained(out)
    print(f"export: {args.adapter} merged into a bf16 copy of its base -> {args.output} "
          "(AutoModelForSequenceClassification.from_pretrained loads it)", file=sys.stderr)


def report(args) -> None:
    from .report import write

    write(args.rev, args.output)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="llmclf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="classify texts with a trained adapter")
    p.add_argument("input", nargs="?", default="-", help="CSV, JSONL or plain-lines file; '-' or nothing: stdin")
    p.add_argument("-o", "--output", default="-", help="output file ('-': stdout)")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from the output's suffix, else jsonl")
    p.add_argument("--adapter", default=ADAPTER)
    p.add_argument("--base", help="base model to load the adapter on (default: the one it was trained on)")
    p.add_argument("--text-column", default="text", help="column (CSV) or field (JSONL) holding the text")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--max-batch-tokens", type=int, default=16384,
                   help="a batch of long texts holds fewer rows: at most this many padded tokens (0: no cap)")
    p.add_argument("--calibration", help="temperature file written by the evaluate stage (default: "
                   f"{CALIBRATION} when it was fitted for this adapter; otherwise none is applied)")
    p.add_argument("--no-calibration", action="store_true", help="the model's own probabilities, no temperature")
    p.set_defaults(run=predict)
    e = sub.add_parser("export", help="merge the adapter into a bf16 copy of its base model")
    e.add_argument("-o", "--output", default="models/merged")
    e.add_argument("--adapter", default=ADAPTER)
    e.set_defaults(run=export)
    r = sub.add_parser("report", help="metrics/report.md: metrics and params diff against a git revision")
    r.add_argument("--rev", default="main", help="git revision to compare with (default: main)")
    r.add_argument("-o", "--output", default="metrics/report.md")
    r.set_defaults(run=report)
    s = sub.add_parser("preset", add_help=False, help="run presets/NAME.yaml as an experiment (--exp) or apply it "
                       "to params.yaml; `llmclf preset --help` for more")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["preset"]:  # its own parser: everything after --exp goes to dvc
        return presets.main(argv[1:])
    args = ap.parse_args(argv)
    if getattr(args, "format", "x") is None:
        args.format = "csv" if str(args.output).endswith(".csv") else "jsonl"
    args.run(args)


if __name__ == "__main__":
    main()
