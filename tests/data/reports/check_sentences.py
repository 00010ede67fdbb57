#!/usr/bin/env python3
"""Validate sentences_dev.jsonl + sentences_test.jsonl against GUIDELINE.md's file format and
print counts per finding x certainty.  Exit status 1 on any format problem."""
import json
import os
import re
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = sys.argv[1:] or [os.path.join(HERE, f) for f in ("sentences_dev.jsonl", "sentences_test.jsonl")]
FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
            "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
            "Pleural_Thickening", "Hernia"]
CERTS = ["definite", "probable", "possible", "hypothetical", "negated"]
SECTIONS = {"FINDINGS", "IMPRESSION", "INDICATION", "HISTORY", "COMPARISON", "TECHNIQUE", ""}
KEYS = {"id", "section", "text", "gold"}
# related signs that are NOT nih14 findings by themselves (GUIDELINE.md table, right column)
RELATED = re.compile(r"opacit|opacif|airspace|air-space|interstitial (marking|opacit|prominence|pattern|change)"
    r"|ground[- ]glass|hyperinfla|hyperexpan|hyperlucen|\bcopd\b|bulla|bullae|bleb|scar|\bild\b"
    r"|interstitial lung disease|volume loss|blunt|fissur(e|al) fluid|fluid (tracking )?(in|into) the .*fissure"
    r"|vascular congestion|congestion|cephaliz|kerley|infect|inflammat|tumou?r|neoplas|malignan|carcinoma"
    r"|cancer|metasta|granulom|subcutaneous (emphysema|air)|cystic fibrosis|thyroid|breast|chest[- ]wall mass"
    r"|plaque|apical capping|mass effect|pneumomediastinum|pneumoperitoneum|haz(y|iness)|density|densities"
    r"|reticula|honeycomb|elevated|pericardial effusion|ventricular|atrial enlargement|aspiration"
    r"|fluid overload|\bchf\b|heart failure|shadowing", re.I)

def main():
    errs, warns, rows, ids, texts = [], [], [], set(), {}
    for path in FILES:
        if not os.path.exists(path):
            errs.append(f"missing {path}")
            continue
        with open(path, encoding="utf-8") as file:
            lines = list(file)
        for ln, line in enumerate(lines, 1):
            where = f"{os.path.basename(path)}:{ln}"
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                errs.append(f"{where}: bad JSON ({e})")
                continue
            if set(r) != KEYS:
                errs.append(f"{where}: keys {sorted(r)} != {sorted(KEYS)}")
                continue
            if not re.fullmatch(r"s-\d{4}", str(r["id"])):
                errs.append(f"{where}: bad id {r['id']!r}")
            if r["id"] in ids:
                errs.append(f"{where}: duplicate id {r['id']}")
            ids.add(r["id"])
            if r["section"] not in SECTIONS:
                errs.append(f"{where}: bad section {r['section']!r}")
            t = r["text"]
            if not isinstance(t, str) or not t.strip():
                errs.append(f"{where}: empty text")
                continue
            nw = len(t.split())
            if nw < 3:
                warns.append(f"{where}: only {nw} words")
            if not 1 <= nw <= 45:
                errs.append(f"{where}: {nw} words")
            key = " ".join(t.lower().split())
            if key in texts:
                errs.append(f"{where}: duplicate text of {texts[key]}: {t!r}")
            texts[key] = r["id"]
            g = r["gold"]
            if not isinstance(g, dict):
                errs.append(f"{where}: gold is not an object")
                continue
            for f, c in g.items():
                if f not in FINDINGS:
                    errs.append(f"{where}: unknown finding {f!r}")
                if c not in CERTS:
                    errs.append(f"{where}: unknown certainty {c!r} for {f}")
            rows.append((os.path.basename(path), r))

    tab = Counter((f, c) for _, r in rows for f, c in r["gold"].items())
    print(f"sentences: {len(rows)} "
          + " ".join(f"{n}={sum(1 for p, _ in rows if p == n)}" for n in sorted({p for p, _ in rows})))
    w = max(map(len, FINDINGS))
    print(f"{'finding':<{w}} " + " ".join(f"{c[:5]:>6}" for c in CERTS) + "  sent")
    for f in FINDINGS:
        n_sent = sum(1 for _, r in rows if f in r["gold"])
        print(f"{f:<{w}} " + " ".join(f"{tab[(f, c)]:>6}" for c in CERTS) + f"  {n_sent:>4}")
        if n_sent < 40:
            print(f"  WARNING: {f} appears in only {n_sent} sentences (< 40)")
        for c in CERTS:
            if tab[(f, c)] == 0:
                print(f"  WARNING: {f} never {c}")
    tot = Counter(c for (_, c), n in tab.items() for _ in range(n))
    allm = sum(tot.values())
    print(f"{'all mentions':<{w}} " + " ".join(f"{tot[c]:>6}" for c in CERTS) + f"  {allm}")
    print(f"{'share %':<{w}} " + " ".join(f"{100 * tot[c] / allm:>6.1f}" for c in CERTS))
    empty = [r for _, r in rows if not r["gold"]]
    rel = [r for _, r in rows if RELATED.search(r["text"])]
    rel_only = [r for r in rel if not r["gold"]]
    print(f"empty-gold sentences: {len(empty)}")
    print(f"sentences with a related-sign term: {len(rel)} (of which gold empty: {len(rel_only)})")
    print("sections:", dict(Counter(r["section"] for _, r in rows)))
    lens = [len(r["text"].split()) for _, r in rows]
    print(f"length in words: min {min(lens)} max {max(lens)} mean {sum(lens) / len(lens):.1f}")
    for w_ in warns:
        print("warning:", w_)
    if errs:
        print(f"\n{len(errs)} PROBLEMS:")
        print("\n".join(errs[:50]))
        return 1
    print("format OK")
    return 0

if __name__ == "__main__":
    sys.exit(main())
