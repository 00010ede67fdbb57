"""Frozen text embeddings for the proof: each distinct sentence goes through the packaged MiniLM once.

A text of several sentences (a description of two findings, a concatenation of all levels) is the
normalised mean of its sentences' embeddings -- MiniLM itself mean-pools tokens, so this is close to
encoding the joined string, and it keeps the encoder's work to a few hundred sentences however many
combinations the data holds. Texts are identified by their sentence tuple: identical texts share an id,
which is what the loss's identical-text rule needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CONCAT = "concat"  # the pseudo-level: every present level's sentences, coarse to fine, as one text


@dataclass
class TextTable:
    """Distinct texts as rows of `embeddings` [T, 384]; `index[level]` [N] the row of each image's text
    (-1 where the image has none at that level)."""

    embeddings: np.ndarray
    index: dict[str, np.ndarray]
    texts: list[tuple[str, ...]]

    def row_of(self, text: tuple[str, ...]) -> int:
        return self.texts.index(text)


def encode_sentences(sentences: list[str], device: str = "cpu", batch_size: int = 128) -> np.ndarray:
    """L2-normalised MiniLM sentence embeddings (mean pooling over real tokens, as sentence-transformers)."""
    from transformers import AutoModel, AutoTokenizer

    from mgll_train.model import default_text_folder

    folder = default_text_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).to(device).eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(sentences), batch_size):
            tokens = tokenizer(sentences[start : start + batch_size], padding=True, truncation=True,
                               max_length=64, return_tensors="pt").to(device)  # fmt: skip
            hidden = model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            parts.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)


def build_table(
    texts: dict[str, list[tuple[str, ...] | None]], levels: tuple[str, ...], extra: list[tuple[str, ...]] = (),
    device: str = "cpu",
) -> TextTable:
    """The table of every distinct text at `levels`, the concatenation of the present levels, and `extra`
    texts (prompts) -- all from one pass of the encoder over their distinct sentences."""
    n = len(next(iter(texts.values())))
    per_level = {level: texts[level] for level in levels}
    per_level[CONCAT] = [
        tuple(s for level in levels for s in (texts[level][i] or ())) or None for i in range(n)
    ]
    distinct: dict[tuple[str, ...], int] = {}
    index = {}
    for level, column in per_level.items():
        index[level] = np.asarray([distinct.setdefault(t, len(distinct)) if t else -1 for t in column], dtype=np.int64)
    for text in extra:
        distinct.setdefault(text, len(distinct))
    ordered = list(distinct)
    sentences = sorted({s for text in ordered for s in text})
    sentence_emb = encode_sentences(sentences, device)
    row = {s: k for k, s in enumerate(sentences)}
    embeddings = np.stack([sentence_emb[[row[s] for s in text]].mean(axis=0) for text in ordered])
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
    return TextTable(embeddings=embeddings.astype(np.float32), index=index, texts=ordered)
