"""Sections and sentences, cut before any NLP runs; each sentence is then read on its own."""

from __future__ import annotations

from mgll_data.reports import label_reports, segment


def cut(text: str) -> list[tuple[str | None, str]]:
    """Every sentence of the report with its section, cut as the labeller cuts it."""
    return [(s.section, text[s.start : s.end])
            for section in segment.sections(text) for s in segment.sentences(text, section)]


def test_headings_sentences_and_their_sections():
    text = "INDICATION: Cough.\nFINDINGS: No effusion. Heart size normal\nIMPRESSION: Normal chest x-XXXX."
    assert cut(text) == [("indication", "Cough."), ("findings", "No effusion."), ("findings", "Heart size normal"),
                         ("impression", "Normal chest x-XXXX.")]


def test_wrapped_lines_are_one_sentence_but_list_lines_are_not():
    text = "There is no focal consolidation, pleural effusion or\n pneumothorax.\nHeart normal\nLungs clear"
    assert [s for _, s in cut(text)] == ["There is no focal consolidation, pleural effusion or\n pneumothorax.",
                                         "Heart normal", "Lungs clear"]


def test_abbreviations_do_not_end_a_sentence():
    assert [s for _, s in cut("Effusion vs. atelectasis, e.g. small. Dr. Smith notified.")] == [
        "Effusion vs. atelectasis, e.g. small.", "Dr. Smith notified."]


def test_capital_heading_alone_on_its_line():
    assert cut("IMPRESSION\nNo acute disease.") == [("impression", "No acute disease.")]


def test_inline_clinical_question_is_one_sentence():
    text = "Portable AP. Indication: fever, eval infiltrate. Lungs clear. No effusion."
    assert cut(text) == [(None, "Portable AP."), ("indication", "fever, eval infiltrate."), (None, "Lungs clear."),
                         (None, "No effusion.")]


def test_paragraph_after_examination_line_is_unheaded():
    text = "EXAMINATION:  CHEST (PA AND LATERAL)\n\n Dense consolidation in the left lower lobe.\n"
    assert cut(text) == [("technique", "CHEST (PA AND LATERAL)"), (None, "Dense consolidation in the left lower lobe.")]


def test_run_on_text_is_cut_into_bounded_pieces():
    text = "no effusion, " * 500
    pieces = segment.sentences(text)
    assert max(s.end - s.start for s in pieces) <= segment.MAX_SENTENCE_CHARS
    assert "".join(text[s.start : s.end] for s in pieces).replace(" ", "") == text.replace(" ", "")


def test_each_sentence_is_read_as_its_own_document(monkeypatch):
    """What keeps understanding linear in a report's length (it was quadratic: 1,000 lines took 26 s):
    spaCy only ever sees single sentences, however long the report. bench_labeller.py times it."""
    from mgll_data.reports import nlp as nlp_module

    seen: list[int] = []
    real = nlp_module.get_nlp("nih14")

    class Recorder:
        def __getattr__(self, name):
            return getattr(real, name)

        def pipe(self, docs, **kwargs):
            docs = list(docs)
            seen.extend(len(d.text) for d in docs)
            return real.pipe(docs, **kwargs)

    monkeypatch.setattr("mgll_data.reports.understanding.get_nlp", lambda _: Recorder())
    line = "No pleural effusion or pneumothorax. Mild cardiomegaly, possible atelectasis at the left base.\n"
    [result] = label_reports([line * 300], "nih14")
    assert len(seen) == 600 and max(seen) <= len(line)
    assert len(result.mentions) == 4 * 300
