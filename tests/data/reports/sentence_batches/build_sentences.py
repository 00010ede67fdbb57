#!/usr/bin/env python3
"""Build sentences_dev.jsonl / sentences_test.jsonl from the hand-written batch files.
Each batch line: SECTION || text || codes   (codes '-' = no nih14 finding)."""
import glob
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(HERE)
SEC = {"F": "FINDINGS", "I": "IMPRESSION", "IND": "INDICATION", "HX": "HISTORY",
       "CMP": "COMPARISON", "TECH": "TECHNIQUE", "": ""}
FIND = {"At": "Atelectasis", "Ca": "Cardiomegaly", "Ef": "Effusion", "In": "Infiltration",
        "Ma": "Mass", "No": "Nodule", "Pn": "Pneumonia", "Px": "Pneumothorax",
        "Co": "Consolidation", "Ed": "Edema", "Em": "Emphysema", "Fi": "Fibrosis",
        "PT": "Pleural_Thickening", "He": "Hernia"}
CERT = {"d": "definite", "pb": "probable", "ps": "possible", "h": "hypothetical", "n": "negated"}

rows, seen = [], {}
for path in sorted(glob.glob(os.path.join(HERE, "b*.txt"))):
    with open(path, encoding="utf-8") as file:
        lines = list(file)
    for ln, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("||")]
        if len(parts) != 3:
            sys.exit(f"{path}:{ln}: bad line: {line!r}")
        sec, text, codes = parts
        gold = {}
        if codes != "-":
            for c in codes.split():
                f, v = c.split(":")
                if FIND[f] in gold:
                    sys.exit(f"{path}:{ln}: duplicate finding {f}")
                gold[FIND[f]] = CERT[v]
        key = " ".join(text.lower().split())
        if key in seen:
            sys.exit(f"{path}:{ln}: duplicate text (also {seen[key]}): {text!r}")
        seen[key] = f"{os.path.basename(path)}:{ln}"
        rows.append({"section": SEC[sec], "text": text, "gold": gold})

random.Random(20240611).shuffle(rows)
for i, r in enumerate(rows, 1):
    r["id"] = f"s-{i:04d}"
n_dev = round(len(rows) * 2 / 3)
for name, part in (("sentences_dev.jsonl", rows[:n_dev]), ("sentences_test.jsonl", rows[n_dev:])):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as fh:
        for r in part:
            fh.write(json.dumps({"id": r["id"], "section": r["section"], "text": r["text"],
                                 "gold": r["gold"]}, ensure_ascii=False) + "\n")
print(f"{len(rows)} sentences: dev {n_dev}, test {len(rows) - n_dev}")
