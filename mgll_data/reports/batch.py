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

from mgll_data.reports.certainty import Policy, policy_from
from mgll_data.reports.labels import Label, Mention
from mgll_data.reports.nlp import get_nlp
from mgll_data.reports.understanding import analyse_reports

DEFAULT_SECTIONS = ("findings", "impression")


@dataclass
class LabelResult:
    labels: list[Label]
    mentions: list[Mention]
    truncated_chars: int = 0


def _label_chunk(args: tuple[list[str], str, tuple[str, ...], Policy]) -> list[LabelResult]:
    texts, vocab_ref, sections, policy = args
    return [
        LabelResult(a.labels, a.mentions, a.truncated_chars)
        for a in analyse_reports(texts, vocab_ref, sections, policy)
    ]


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
    policy: Policy | str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[LabelResult]:
    """Label reports in order; `on_progress(n)` is called after each finished chunk of n reports;
    `policy` is an uncertain-policy preset name or Policy (default: `certainty.DEFAULT_POLICY`).

    Texts must already be usable (non-empty, reasonable size): the CLI filters bad rows first so one bad
    row never costs a whole batch.
    """
    policy = policy_from(policy)
    get_nlp(vocab)  # build before forking so workers inherit it
    if n_process <= 1 or len(texts) <= batch_size:
        results: list[LabelResult] = []
        for chunk in _chunks(texts, batch_size):
            results.extend(_label_chunk((chunk, vocab, sections, policy)))
            if on_progress:
                on_progress(len(chunk))
        return results
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    jobs = [(chunk, vocab, sections, policy) for chunk in _chunks(texts, batch_size)]
    results = []
    with ProcessPoolExecutor(max_workers=n_process, mp_context=context) as pool:
        for job, chunk_results in zip(jobs, pool.map(_label_chunk, jobs)):
            results.extend(chunk_results)
            if on_progress:
                on_progress(len(job[0]))
    return results
