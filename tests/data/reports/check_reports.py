#!/usr/bin/env python3
"""Validate the whole-report evaluation files and print their label counts.

Checks reports_dev.jsonl and reports_test.jsonl (or the files given on the command
line) against GUIDELINE.md: exact keys, exact label names, exact certainty values,
ids unique across all files, and the CheXpert No Finding rule. Exits 1 on any error
so the set cannot silently drift from the format the evaluator expects.

Usage: python3 check_reports.py [FILE.jsonl ...]
"""
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_FILES = [HERE / "reports_dev.jsonl", HERE / "reports_test.jsonl"]

KEYS = {"id", "style", "text", "gold_nih14", "gold_chexpert"}
NIH14 = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
         "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
CHEXPERT = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity",
            "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
            "Pleural Other", "Fracture", "Support Devices"]
CERTAINTIES = ["definite", "probable", "possible", "negated", "hypothetical"]
POSITIVE = {"definite", "probable", "possible"}
ID_RE = re.compile(r"^r-\d{4}$")
MIN_PRESENT = 25  # each nih14 finding definite/probable in at least this many reports


def check_labels(rid, field, labels, names, errors):
    if not isinstance(labels, dict):
        errors.append(f"{rid}: {field} is not an object")
        return {}
    for name, value in labels.items():
        if name not in names:
            errors.append(f"{rid}: {field} has unknown label {name!r}")
        if value not in CERTAINTIES:
            errors.append(f"{rid}: {field}[{name!r}] has invalid certainty {value!r}")
    return labels


def check_no_finding(rid, cx, errors):
    """No Finding is definite exactly when no observation but Support Devices is positive."""
    others_positive = any(v in POSITIVE for k, v in cx.items() if k not in ("No Finding", "Support Devices"))
    nf = cx.get("No Finding")
    if nf is not None and nf != "definite":
        errors.append(f"{rid}: No Finding must be 'definite' when present, got {nf!r}")
    if others_positive and nf is not None:
        errors.append(f"{rid}: No Finding set although another observation is positive")
    if not others_positive and nf is None:
        errors.append(f"{rid}: No Finding missing although no observation except Support Devices is positive")


def load(path, errors):
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            errors.append(f"{path.name}:{lineno}: blank line")
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{path.name}:{lineno}: invalid JSON ({exc})")
            continue
        if not isinstance(rec, dict):
            errors.append(f"{path.name}:{lineno}: record is not an object")
            continue
        records.append(rec)
    return records


def validate(records, errors):
    seen = set()
    for rec in records:
        rid = rec.get("id", "<no id>")
        if set(rec) != KEYS:
            errors.append(f"{rid}: keys {sorted(rec)} != {sorted(KEYS)}")
        if not isinstance(rid, str) or not ID_RE.match(rid):
            errors.append(f"{rid}: id must look like r-0001")
        if rid in seen:
            errors.append(f"{rid}: duplicate id")
        seen.add(rid)
        if not isinstance(rec.get("style"), str) or not rec.get("style"):
            errors.append(f"{rid}: style must be a non-empty string")
        if not isinstance(rec.get("text"), str) or not rec.get("text", "").strip():
            errors.append(f"{rid}: text must be a non-empty string")
        check_labels(rid, "gold_nih14", rec.get("gold_nih14"), NIH14, errors)
        cx = check_labels(rid, "gold_chexpert", rec.get("gold_chexpert"), CHEXPERT, errors)
        if isinstance(cx, dict):
            check_no_finding(rid, cx, errors)


def table(records, field, names):
    counts = Counter()
    for rec in records:
        for name, value in rec.get(field, {}).items():
            counts[(name, value)] += 1
    width = max(len(n) for n in names)
    lines = [f"{'':{width}}  " + " ".join(f"{c[:6]:>6}" for c in CERTAINTIES) + "  present(d/p)"]
    for name in names:
        row = [counts[(name, c)] for c in CERTAINTIES]
        lines.append(f"{name:{width}}  " + " ".join(f"{n:6d}" for n in row) + f"  {row[0] + row[1]:6d}")
    return "\n".join(lines)


def main(argv):
    paths = [Path(p) for p in argv] or DEFAULT_FILES
    errors = []
    per_file = {}
    for path in paths:
        if not path.exists():
            errors.append(f"{path}: missing")
            continue
        per_file[path.name] = load(path, errors)
    records = [r for recs in per_file.values() for r in recs]
    validate(records, errors)

    print("files: " + ", ".join(f"{name} ({len(recs)})" for name, recs in per_file.items())
          + f"; total {len(records)} reports")
    print("\n== gold_nih14: finding x certainty ==")
    print(table(records, "gold_nih14", NIH14))
    print("\n== gold_chexpert: observation x certainty ==")
    print(table(records, "gold_chexpert", CHEXPERT))

    print("\n== per style ==")
    styles = Counter(r.get("style") for r in records)
    no_nih = Counter(r.get("style") for r in records
                     if not any(v in POSITIVE for v in r.get("gold_nih14", {}).values()))
    for style, n in sorted(styles.items()):
        print(f"{style:18s} {n:4d} reports, {no_nih[style]:3d} without any positive nih14 finding")

    n_pos = Counter(sum(v in POSITIVE for v in r.get("gold_nih14", {}).values()) for r in records)
    print("\npositive (d/p/q) nih14 findings per report: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(n_pos.items())))
    normal = sum(1 for r in records if "No Finding" in r.get("gold_chexpert", {})
                 and not any(v in POSITIVE for v in r.get("gold_nih14", {}).values()))
    print(f"normal reports (no positive nih14 finding and CheXpert No Finding): {normal} "
          f"({100 * normal / max(len(records), 1):.1f}%)")

    present = Counter(k for r in records for k, v in r.get("gold_nih14", {}).items()
                      if v in ("definite", "probable"))
    thin = [f"{k} ({present[k]})" for k in NIH14 if present[k] < MIN_PRESENT]
    if thin:
        print(f"\nWARNING: present (definite/probable) in fewer than {MIN_PRESENT} reports: " + ", ".join(thin))

    if errors:
        print(f"\n{len(errors)} ERROR(S):")
        for e in errors:
            print("  " + e)
        return 1
    print("\nOK: format, label names, certainty values, unique ids and No Finding rule all valid.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
