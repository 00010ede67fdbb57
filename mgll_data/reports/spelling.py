"""Misspelt finding words ("pneumothorx", "emphysmatous", "nodlues") read as the words they stand for.

Dictated reports carry typos, and a labeller that only knows "pneumothorax" misses "pneumothorx". A
token one edit away (insert, delete, substitute or swap two neighbours) from a vocabulary word, or whose
start is one edit away from a vocabulary stem ("emphysma..." for "emphysema*"), is read as that word.
Only words of five letters or more are corrected, only towards the vocabulary's own words, and never a
plain inflection ("larger" stays "larger"). Lookups use one-deletion indexes (the SymSpell idea), so a
token costs a few dictionary lookups.
"""

from __future__ import annotations

from functools import lru_cache

from mgll_data.reports.vocabulary import Vocabulary, load_vocabulary, split_words

MIN_LENGTH = 5
# Common words of chest reports one edit away from a finding word: never corrected.
KNOWN_WORDS = frozenset({"hemithorax", "hemithoraces", "heard", "modular", "injection", "injections", "nodes",
                         "masses", "atrial", "plate", "plates", "effect", "effects", "infusion", "lobar", "lobes"})
_INFLECTIONS = ("s", "es", "d", "ed", "r", "er", "ing", "ly", "al")


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance between a and b is exactly one."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _index(words: set[str]) -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    for word in words:
        for key in {word} | _deletes(word):
            index.setdefault(key, set()).add(word)
    return index


class Speller:
    """Corrections towards one vocabulary's words and stems."""

    def __init__(self, words: set[str], stems: set[str]):
        self.words = {w for w in words if len(w) >= MIN_LENGTH}
        self.stems = {s for s in stems if len(s) >= MIN_LENGTH}
        self._word_index = _index(self.words)
        self._stem_index = _index(self.stems)
        self._lengths = sorted({len(s) for s in self.stems})
        self._seen: dict[str, str | None] = {}

    def _near(self, token: str, index: dict[str, set[str]]) -> str | None:
        candidates = set(index.get(token, ()))
        for key in _deletes(token):
            candidates |= index.get(key, set())
        matches = sorted(c for c in candidates if _one_edit(token, c))
        return matches[0] if matches else None  # "herniaa": hernia or hernias, the same finding either way

    def correct(self, token: str) -> str | None:
        """The word a token stands for, or None when it is fine or not close to any vocabulary word."""
        lower = token.lower()
        if lower not in self._seen:
            self._seen[lower] = self._correct(lower) if len(self._seen) < 200_000 else None
        return self._seen[lower]

    def _correct(self, lower: str) -> str | None:
        if len(lower) < MIN_LENGTH or not lower.isalpha() or lower in self.words or lower in KNOWN_WORDS:
            return None
        if any(lower.startswith(stem) for stem in self.stems):
            return None
        word = self._near(lower, self._word_index)
        if word and not (lower.startswith(word) and lower[len(word):] in _INFLECTIONS):
            return word
        for length in self._lengths:
            for k in (length - 1, length, length + 1):
                stem = self._near(lower[:k], self._stem_index) if MIN_LENGTH <= k <= len(lower) else None
                if stem and len(stem) == length:
                    return stem + lower[k:]
        return None


@lru_cache(maxsize=8)
def _speller(vocab: Vocabulary) -> Speller:
    words: set[str] = set()
    stems: set[str] = set()
    for finding in vocab.mentionable():
        words.update(w for w in finding.plain.lower().split() if w.isalpha())
        for phrase in finding.phrases():
            for word in split_words(phrase):
                for option in word.rstrip("?").split("|"):
                    if option.endswith("*"):
                        stems.add(option[:-1])
                    elif option.isalpha():
                        words.add(option)
    return Speller(words, stems)


def speller(vocab_name_or_path: str) -> Speller:
    """The speller for a vocabulary, built once per process."""
    return _speller(load_vocabulary(vocab_name_or_path))
