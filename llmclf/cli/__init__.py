"""`llmclf` command: use a trained classifier.

    llmclf predict texts.csv -o predictions.jsonl     # classify a file (CSV, JSONL, plain lines) or stdin
    llmclf member save NAME                           # the trained model as an ensemble member
    llmclf predict texts.csv --member models/members/NAME   # the mean of both models' probabilities
    llmclf export -o models/merged                    # a standalone bf16 model, adapter merged in
    llmclf report --rev main                          # metrics/report.md for a pull request
    llmclf preset gpu --exp -n gpu-run                # a preset of presets/ as a DVC experiment
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import errors
from ..core.errors import UserError

if TYPE_CHECKING:  # the heavy imports wait for main() to install the error handler: Ctrl-C while they run is one line
    import pandas as pd

    from ..core.params import Inference

ADAPTER = "models/adapter"
CALIBRATION = "models/calibration.json"  # the evaluate stage's temperature and inference settings for that adapter


def read_texts(source: str, text_column: str) -> pd.DataFrame:
    """Rows with `id` and `text` from a CSV, JSONL (or JSON array), Parquet or plain-lines file, or stdin ('-');
    rows without text are skipped."""
    import pandas as pd

    from ..data.readers import check_text, read_json_rows, text_head

    if source == "-":
        lines = sys.stdin.read().splitlines()
        df = pd.DataFrame({"text": lines})
    else:
        path = Path(source)
        if not path.exists():
            raise UserError(f"{path}: no such file")
        if path.is_dir():
            raise UserError(f"{path}: is a folder; give a CSV, JSONL, Parquet or plain-lines file, or '-' for stdin")
        suffix = path.suffix.lower()
        head = b"" if suffix == ".parquet" else text_head(path, "CSV, JSONL or plain-lines")
        try:
            if suffix == ".parquet":
                df = pd.read_parquet(path)
            elif suffix == ".csv":
                df = pd.read_csv(path, dtype=str, keep_default_na=False)
            elif suffix in (".jsonl", ".json"):
                df = read_json_rows(path, head)
            else:
                df = pd.DataFrame({"text": path.read_text(encoding="utf-8").splitlines()})
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except ValueError as e:
            raise UserError(f"{path}: cannot be read: {e}") from None
    if text_column not in df.columns:
        raise UserError(f"{source}: no {text_column!r} column (it has {list(df.columns)}); use --text-column")
    check_text(df[text_column], f"{source}: column {text_column!r}")
    texts = df[text_column].where(df[text_column].notna(), "").astype(str)  # JSON null: no text
    keep = texts.str.strip() != ""
    if not keep.any():
        raise UserError(f"{source}: no texts to classify")
    ids = df["id"] if "id" in df.columns else pd.Series(range(len(df)))
    return pd.DataFrame({"id": ids[keep].to_numpy(), "text": texts[keep].to_numpy()})


def settings(args) -> tuple[Inference, int]:
    """The inference settings and max_length to predict with: the flags given, else those the adapter was
    trained (max_length) and scored with (the evaluate stage's record), else params.yaml's."""
    from ..core.params import Inference
    from ..evaluate import calibration
    from ..model import adapter

    scored = calibration.inference_settings(args.adapter, args.calibration or CALIBRATION)
    flags = {"batch_size": args.batch_size, "max_batch_tokens": args.max_batch_tokens, "dense": args.dense}
    chosen = Inference(**(scored.model_dump() | {k: v for k, v in flags.items() if v is not None}))
    return chosen, args.max_length or adapter.read_info(args.adapter)["model"]["max_length"]


def predict(args) -> None:
    import numpy as np
    import pandas as pd

    from ..evaluate import calibration, ensemble, inference
    from ..model import adapter

    _check_output(args.output, args.input, args.adapter, _base(args.adapter, args.base),
                  args.calibration or CALIBRATION, *args.member)
    rows = read_texts(args.input, args.text_column)
    run_as, max_length = settings(args)
    members = ensemble.members(args.member, adapter.read_info(args.adapter)["classes"], args.adapter)  # before loading
    model, tok, classes = adapter.load_adapter(args.adapter, base=args.base)
    temperature, note = ((1.0, "not temperature-scaled (--no-calibration)") if args.no_calibration
                         else calibration.load_temperature(args.adapter, args.calibration or CALIBRATION,
                                                           required=args.calibration is not None,
                                                           fix=f"{calibration.REFIT}, or pass --no-calibration"))
    size = ensemble.parameters(model)  # before inference merges LoRA into the weights
    logits = inference.classifier(model, tok, run_as, max_length)(rows["text"].tolist(), "predict")
    broken = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if len(broken):  # NaN would be written as invalid JSON, and argmax would pick class 0
        raise UserError(f"{args.adapter}: the model scores {len(broken)} of {len(rows)} texts as NaN or inf "
                        f"(first: id {_plain(rows['id'].iloc[broken[0]])!r}); its weights are broken, retrain it "
                        "(`dvc repro train`)")
    probs = calibration.probabilities(logits, temperature)
    if members:
        del model
        each = [probs]
        for m in members:
            got, count = ensemble.member_probabilities(m, {"predict": rows["text"].tolist()}, run_as, args.max_length,
                                                       calibrated=not args.no_calibration)
            each.append(got["predict"])
            size += count
        probs = ensemble.mean_probabilities(each)
        note = (f"the mean of an ensemble of {len(each)} models, {size:,} parameters; {args.adapter} {note}"
                + ("" if args.no_calibration else ", each member's from its calibration.json"))
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


def _base(adapter: str, base: str | None) -> str:
    """The folder of the base model the adapter loads on: an input that no output may replace."""
    from ..model.adapter import read_info
    from ..model.basemodel import resolve

    return resolve(base or read_info(adapter)["model"]["name"])


def _check_output(output: str, *inputs: str) -> None:
    """Refuse, before any work, a folder as the output file, or an output that would replace an input
    (or lie inside one, such as the adapter folder), compared as the paths they resolve to."""
    if output == "-":
        return
    if Path(output).is_dir():
        raise UserError(f"{output}: is a folder; give the path of a file to write")
    out = Path(output).resolve()
    for path in inputs:
        if path != "-" and (out == Path(path).resolve() or out.is_relative_to(Path(path).resolve())):
            raise UserError(f"{output}: would overwrite {path}, an input; give another output path")


def _write(text: str, output: str) -> None:
    if output == "-":
        with errors.writing("standard output"):  # a full disk or a closed pipe behind it: one line
            sys.stdout.write(text)
            sys.stdout.flush()
        return
    from ..core.atomic import write_text

    try:
        if Path(output).exists() and not Path(output).is_file() and not Path(output).is_dir():
            with open(output, "w", encoding="utf-8") as f:  # /dev/null, a FIFO: written into, never replaced
                f.write(text)
        else:
            write_text(text, output)
    except OSError as e:
        raise UserError(f"{output}: cannot write ({e.strerror})") from None


def export(args) -> None:
    import torch

    from ..core.atomic import atomic_path
    from ..model.adapter import load_adapter
    from ..model.dense import dense_for_inference

    _check_export_target(Path(args.output), args.adapter, args.force)
    model, tok, classes = load_adapter(args.adapter)
    merged = dense_for_inference(model).to(torch.bfloat16)
    merged.config.dtype = torch.bfloat16
    with atomic_path(args.output, is_dir=True) as out:
        merged.save_pretrained(out)
        tok.save_pretrained(out)
    print(f"export: {args.adapter} merged into a bf16 copy of its base -> {args.output} "
          "(AutoModelForSequenceClassification.from_pretrained loads it)", file=sys.stderr)


def _check_export_target(out: Path, adapter: str, force: bool) -> None:
    """A folder that holds anything is replaced only with --force, and never one holding the adapter
    or the working directory."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file; give a folder path for the exported model")
    if out.resolve().is_relative_to(Path(adapter).resolve()):
        raise UserError(f"{out}: lies inside the adapter {adapter}; give a folder outside it")
    if not out.is_dir() or not any(out.iterdir()):
        return
    for inside in (Path(adapter), Path.cwd(), Path(_base(adapter, None))):
        if inside.resolve().is_relative_to(out.resolve()):
            raise UserError(f"{out}: holds {inside}, which exporting would delete; give another folder")
    if not force:
        raise UserError(f"{out}: is not empty; give a new folder, or --force to replace everything in it")


def member_save(args) -> None:
    from ..evaluate.ensemble import MEMBERS, TEACHERS, save

    root = TEACHERS if args.teacher else MEMBERS
    target = save(args.name, args.adapter, args.calibration, force=args.force, root=root)
    use = (f"dvc exp run -S 'train.teachers=[{target}]' (distillation)" if args.teacher else
           f"dvc exp run -S 'evaluate.members=[{target}]', or llmclf predict --member {target}")
    print(f"member: {args.adapter} and {args.calibration} -> {target}\n"
          f"track it: dvc add {target} && git add {target}.dvc {root}/.gitignore\n"
          f"use it: {use}\n"
          f"from an experiment: dvc exp apply EXP && dvc checkout && llmclf member save EXP", file=sys.stderr)


def member_list(args) -> None:
    from ..evaluate.ensemble import MEMBERS, member, parameters, saved
    from ..model.adapter import load_adapter

    folders = saved()
    if not folders:
        print(f"no members in {MEMBERS}; `llmclf member save NAME` saves the trained model as one", file=sys.stderr)
        return
    lines = ["name\tbase model\tparameters\tval temperature"]
    for folder in folders:
        m = member(folder)
        model, _, _ = load_adapter(m.adapter)  # counted as loaded: the same rule as predict and evaluate
        lines.append(f"{m.name}\t{m.base}\t{parameters(model):,}\t{m.temperature}")
        del model
    print("\n".join(lines))


def report(args) -> None:
    from ..evaluate.report import READS, write

    _check_output(args.output, *READS)
    write(args.rev, args.output)


def _count(least: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is less than {least}")
        return value
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as every other error
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> None:
    errors.install()
    ap = _Parser(prog="llmclf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="classify texts with a trained adapter")
    p.add_argument("input", nargs="?", default="-",
                   help="CSV, JSONL, Parquet or plain-lines file; '-' or nothing: stdin")
    p.add_argument("-o", "--output", default="-", help="output file ('-': stdout)")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from the output's suffix, else jsonl")
    p.add_argument("--adapter", default=ADAPTER)
    p.add_argument("--base", help="base model to load the adapter on (default: the one it was trained on)")
    p.add_argument("--text-column", default="text", help="column (CSV) or field (JSONL) holding the text")
    p.add_argument("--batch-size", type=_count(1),
                   help="default: as the evaluate stage scored the adapter, else params.yaml's")
    p.add_argument("--max-length", type=_count(1), help="tokens read of each text (default: the adapter's training max_length)")
    p.add_argument("--max-batch-tokens", type=_count(0),
                   help="a batch of long texts holds fewer rows: at most this many padded tokens (0: no cap; "
                   "default: as the evaluate stage scored the adapter, else params.yaml's)")
    p.add_argument("--dense", action=argparse.BooleanOptionalAction, default=None,
                   help="dequantize and merge LoRA before predicting (default: as the evaluate stage scored the adapter, "
                   "else params.yaml's)")
    p.add_argument("--calibration", help="temperature file written by the evaluate stage (default: "
                   f"{CALIBRATION} when it was fitted for this adapter; otherwise none is applied)")
    p.add_argument("--no-calibration", action="store_true", help="the model's own probabilities, no temperature")
    p.add_argument("--member", action="append", default=[], metavar="DIR",
                   help="an ensemble member (`llmclf member save`); repeatable: the probabilities are the mean of "
                   "the adapter's and every member's, each scaled by its own temperature")
    p.set_defaults(run=predict)
    m = sub.add_parser("member", help="ensemble members: save the trained model as one, list them")
    msub = m.add_subparsers(dest="action", required=True)
    ms = msub.add_parser("save", help=f"copy {ADAPTER} and {CALIBRATION} into models/members/NAME")
    ms.add_argument("name", help="the member's folder name, e.g. the experiment's")
    ms.add_argument("--adapter", default=ADAPTER)
    ms.add_argument("--calibration", default=CALIBRATION, help="the temperature the evaluate stage fitted for it")
    ms.add_argument("--force", action="store_true", help="replace a member of that name")
    ms.add_argument("--teacher", action="store_true",
                    help="save it in models/teachers instead: a teacher for distillation (train.teachers)")
    ms.set_defaults(run=member_save)
    msub.add_parser("list", help="name, base model, parameters and val temperature of each member").set_defaults(
        run=member_list)
    e = sub.add_parser("export", help="merge the adapter into a bf16 copy of its base model")
    e.add_argument("-o", "--output", default="models/merged")
    e.add_argument("--adapter", default=ADAPTER)
    e.add_argument("--force", action="store_true", help="replace the output folder when it is not empty")
    e.set_defaults(run=export)
    r = sub.add_parser("report", help="metrics/report.md: metrics and params diff against a git revision")
    r.add_argument("--rev", default="main", help="git revision to compare with (default: main)")
    r.add_argument("-o", "--output", default="metrics/report.md")
    r.set_defaults(run=report)
    s = sub.add_parser("preset", add_help=False, help="run presets/NAME.yaml as an experiment (--exp) or apply it "
                       "to params.yaml; `llmclf preset --help` for more")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["preset"]:  # its own parser: everything after --exp goes to dvc
        from . import presets

        return presets.main(argv[1:])
    args = ap.parse_args(argv)
    errors.install(f"llmclf {args.command}; its output is as it was, run it again")
    if getattr(args, "format", "x") is None:
        args.format = "csv" if str(args.output).endswith(".csv") else "jsonl"
    args.run(args)
