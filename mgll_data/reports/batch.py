"""Labelling many reports at once (`mgll label`): spaCy's nlp.pipe in batches, over several processes.

Worker processes return plain tuples, not Docs: medspaCy's span extensions do not survive spaCy's own
multi-process serialisation, and plain data is cheaper to send back. On Linux workers are forked after
the pipeline is built, so each starts without re-loading spaCy.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from mgll_data.reports.labels import Mention
from mgll_data.reports.nlp import get_nlp, quiet_matchers
from mgll_data.reports.understanding import analyse_doc
from mgll_data.reports.vocabulary import load

DEFAULT_SECTIONS = ("findings", "impression")


@dataclass
class LabelResult:
    labels: list[tuple[str, int]]
    mentions: list[Mention]


def _label_chunk(args: tuple[list[str], str, tuple[str, ...], int]) -> list[LabelResult]:
    texts, vocab_ref, sections, batch_size = args
    vocab = load(vocab_ref)
    nlp = get_nlp(vocab_ref)
    results = []
    with quiet_matchers():
        for doc in nlp.pipe(texts, batch_size=batch_size):
            analysis = analyse_doc(doc, vocab, sections)
            results.append(LabelResult(analysis.labels, analysis.mentions))
    return results


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def label_reports(
    texts: Sequence[str],
    vocab: str,
    *,
    n_process: int = 1,
    batch_size: int = 64,
    sections: tuple[str, ...] = DEFAULT_SECTIONS,
    on_progress: Callable[[int], None] | None = None,
) -> list[LabelResult]:
    """Label reports in order; `on_progress(n)` is called after each finished chunk of n reports.

    Texts must already be usable (non-empty, reasonable size): the CLI filters bad rows first so one bad
    row never costs a whole batch.
    """
    get_nlp(vocab)  # build before forking so workers inherit it
    if n_process <= 1 or len(texts) <= batch_size:
        results: list[LabelResult] = []
        for chunk in _chunks(texts, batch_size):
            results.extend(_label_chunk((chunk, vocab, sections, batch_size)))
            if on_progress:
                on_progress(len(chunk))
        return results
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    jobs = [(chunk, vocab, sections, batch_size) for chunk in _chunks(texts, batch_size)]
    results = []
    with ProcessPoolExecutor(max_workers=n_process, mp_context=context) as pool:
        for job, chunk_results in zip(jobs, pool.map(_label_chunk, jobs)):
            results.extend(chunk_results)
            if on_progress:
                on_progress(len(job[0]))
    return results
