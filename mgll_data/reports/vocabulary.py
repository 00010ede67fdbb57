"""Label vocabularies: YAML files a user can copy and edit, compiled to spaCy token patterns.

Vocabularies are data, not code, so a hospital can add its own phrasing ("cardiac silhouette is
generous") or its own finding without touching the labeller. The small term syntax (documented at the
top of `mgll_data/vocabularies/nih14.yaml`) lets one line cover inflections and word order without
writing spaCy patterns by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

VOCABULARY_DIR = Path(__file__).resolve().parent.parent / "vocabularies"

# Words a "~" gap may not cross: a gap through a negation, a clause break or an alternative ("effusion vs.
# pleural thickening") would join two statements into one long match that hides the shorter, real one.
GAP_STOP_WORDS = ("no", "not", "without", "but", "however", "although", "and", "or", "nor", "normal", "negative",
                  "vs", "vs.", "versus", "with", "which", "that", "than", "unlikely", "rather", "ventricular", "atrial",
                  "behind")
GAP_MAX = 4


class VocabularyError(ValueError):
    """A vocabulary that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Severity:
    name: str
    when: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Finding:
    """One label of a vocabulary and the phrases that mention it.

    `terms` name the finding itself; `probable` forms name it with built-in doubt ("enlarged cardiac
    silhouette" for cardiomegaly); `normal` statements say it is absent; `related_signs` are evidence
    radiologists write near it (volume loss near atelectasis) that are recorded but never set the label;
    `coordinated` words name it only when joined to a mention of the same category ("effusion or
    *thickening*"); `exclusions` contain a term but are something else ("subcutaneous emphysema").
    """

    name: str
    plain: str
    category: str
    terms: tuple[str, ...]
    probable: tuple[str, ...]
    exclusions: tuple[str, ...]
    explanation: str
    severity: tuple[Severity, ...] = ()
    normal: tuple[str, ...] = ()
    related_signs: tuple[str, ...] = ()
    coordinated: tuple[str, ...] = ()

    def phrases(self) -> tuple[str, ...]:
        return (*self.terms, *self.probable, *self.exclusions, *self.normal, *self.related_signs, *self.coordinated)


@dataclass(frozen=True)
class Vocabulary:
    name: str
    findings: tuple[Finding, ...]
    no_finding: str | None
    modality_hint: str | None
    source: str
    description: str = ""
    no_finding_ignores: tuple[str, ...] = ()
    by_name: dict[str, Finding] = field(default_factory=dict, compare=False, repr=False)

    def names(self) -> list[str]:
        return [f.name for f in self.findings]

    def prefixes(self) -> frozenset[str]:
        """Every "word*" prefix in the vocabulary's terms."""
        terms = [t for f in self.findings for t in f.phrases()]
        return frozenset(p for t in terms for p in term_prefixes(t))

    def mentionable(self) -> list[Finding]:
        """Findings that can be mentioned in text (everything except the derived "No Finding")."""
        return [f for f in self.findings if f.name != self.no_finding]


def available() -> list[str]:
    return sorted(p.stem for p in VOCABULARY_DIR.glob("*.yaml"))


def resolve_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise VocabularyError(f"vocabulary file {str(path)!r} does not exist")
        return path
    builtin = VOCABULARY_DIR / f"{name_or_path}.yaml"
    if not builtin.is_file():
        raise VocabularyError(
            f"no vocabulary {str(name_or_path)!r}: give a YAML file or one of {', '.join(available())}"
        )
    return builtin


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int) -> Vocabulary:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise VocabularyError(f"vocabulary {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return from_dict(raw, source=path)


def load_vocabulary(name_or_path: str | Path) -> Vocabulary:
    """Load a built-in vocabulary by name (nih14, chexpert, fundus) or a YAML file."""
    path = resolve_path(name_or_path).resolve()
    return _load_cached(str(path), path.stat().st_mtime_ns)


def vocabulary_names(name_or_path: str | Path) -> list[str]:
    """The finding names in file order: the label vocabulary stored in dataset metadata."""
    return load_vocabulary(name_or_path).names()


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise VocabularyError(f"{where} must be a list of non-empty strings")
    for term in value:
        compile_term(term, where)
    return tuple(v.strip() for v in value)


def from_dict(raw: Any, source: str = "<dict>") -> Vocabulary:
    if not isinstance(raw, dict) or not isinstance(raw.get("findings"), list) or not raw["findings"]:
        raise VocabularyError(f"vocabulary {source} must be a mapping with a non-empty 'findings' list")
    findings = []
    for i, item in enumerate(raw["findings"]):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise VocabularyError(f"vocabulary {source}: finding #{i + 1} needs a 'name'")
        name = item["name"]
        where = f"vocabulary {source}: finding {name!r}"
        severities = []
        for sev_name, sev in (item.get("severity") or {}).items():
            if not isinstance(sev, dict) or not sev.get("text") or not sev.get("when"):
                raise VocabularyError(f"{where}: severity {sev_name!r} needs 'when' (words) and 'text'")
            severities.append(Severity(str(sev_name), tuple(str(w).lower() for w in sev["when"]), str(sev["text"])))
        explanation = str(item.get("explanation") or "").strip()
        if not explanation:
            raise VocabularyError(f"{where} needs an 'explanation'")
        findings.append(
            Finding(
                name=name,
                plain=str(item.get("plain") or name.replace("_", " ").lower()),
                category=str(item.get("category") or "other"),
                terms=_strings(item.get("terms"), f"{where} terms"),
                # "hedged" is the older spelling of "probable", kept for copied vocabulary files
                probable=_strings(item.get("probable", item.get("hedged")), f"{where} probable"),
                exclusions=_strings(item.get("exclusions"), f"{where} exclusions"),
                explanation=explanation,
                severity=tuple(severities),
                normal=_strings(item.get("normal"), f"{where} normal"),
                related_signs=_strings(item.get("related_signs"), f"{where} related_signs"),
                coordinated=_strings(item.get("coordinated"), f"{where} coordinated"),
            )
        )
    names = [f.name for f in findings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise VocabularyError(f"vocabulary {source}: duplicate finding names {duplicates}")
    no_finding = raw.get("no_finding")
    if no_finding is not None and no_finding not in names:
        raise VocabularyError(f"vocabulary {source}: no_finding {no_finding!r} is not one of its findings")
    ignores = tuple(str(n) for n in (raw.get("no_finding_ignores") or ()))
    if set(ignores) - set(names):
        raise VocabularyError(
            f"vocabulary {source}: no_finding_ignores names unknown findings {sorted(set(ignores) - set(names))}"
        )
    for f in findings:
        if f.name != no_finding and not (f.terms or f.probable):
            raise VocabularyError(f"vocabulary {source}: finding {f.name!r} has no terms")
    return Vocabulary(
        name=str(raw.get("name") or Path(source).stem),
        findings=tuple(findings),
        no_finding=no_finding,
        modality_hint=raw.get("modality_hint"),
        source=source,
        description=str(raw.get("description") or ""),
        no_finding_ignores=ignores,
        by_name={f.name: f for f in findings},
    )


STEM_MARK = "*"


def stem_key(prefix: str) -> str:
    """The NORM value the stem tagger gives a word that starts with `prefix` ("atelecta*")."""
    return prefix + STEM_MARK


def _token_pattern(word: str, prefixes: frozenset[str]) -> dict[str, Any]:
    """Exact words match LOWER; "word*" prefixes match NORM set by the stem tagger (nlp.tag_stems): a
    hash lookup instead of a regular expression run on every token for every pattern."""
    optional = word.endswith("?") and len(word) > 1
    word = word[:-1] if optional else word
    alternatives = [w for w in word.lower().split("|") if w]
    exact = [w for w in alternatives if not w.endswith("*")]
    stems = [w[:-1] for w in alternatives if w.endswith("*")]
    if not stems:
        spec: dict[str, Any] = {"LOWER": exact[0]} if len(exact) == 1 else {"LOWER": {"IN": exact}}
    elif exact:
        # Mixed "scar|fibros*": an exact word may carry another prefix's NORM, so test the text itself.
        options = [re.escape(p) + ".*" for p in stems] + [re.escape(w) for w in exact]
        spec = {"LOWER": {"REGEX": f"^(?:{'|'.join(options)})$"}}
    else:
        # The tagger keeps the longest matching prefix, so a word tagged with a longer prefix that starts
        # with this one also qualifies.
        spec = {"NORM": {"IN": sorted({stem_key(q) for p in stems for q in prefixes | {p} if q.startswith(p)})}}
    if optional:
        spec["OP"] = "?"
    return spec


def term_prefixes(term: str) -> set[str]:
    """The "word*" prefixes one term uses."""
    return {w[:-1] for word in split_words(term) for w in word.rstrip("?").split("|") if w.endswith("*") and len(w) > 1}


def compile_term(term: str, where: str = "term", prefixes: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Turn one vocabulary term ("heart|cardiac ~ enlarged") into a spaCy Matcher token pattern;
    `prefixes` are all the vocabulary's "word*" prefixes (see `_token_pattern`)."""
    words = split_words(term)
    if not words or all(w == "~" for w in words) or words[0] == "~" or words[-1] == "~":
        raise VocabularyError(f"{where}: term {term!r} must start and end with a word")
    pattern = []
    for word in words:
        if word == "~":
            pattern.append({"LOWER": {"NOT_IN": list(GAP_STOP_WORDS)}, "IS_PUNCT": False, "OP": f"{{0,{GAP_MAX}}}"})
        elif word.strip("?*|"):
            pattern.append(_token_pattern(word, prefixes))
        else:
            raise VocabularyError(f"{where}: term {term!r} has an empty word")
    return pattern


def first_word_variants(pattern: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The same pattern once per alternative of its first word, each with a plain LOWER or NORM value.

    spaCy's Matcher tries every pattern at every token; a first word written as a plain value is checked
    in C, while a set or regular expression costs a Python call per token and pattern. Splitting the
    alternatives of the first word keeps the matcher several times faster on the same vocabulary."""
    first, rest = pattern[0], pattern[1:]
    if "OP" in first:
        return [pattern]
    if isinstance(first.get("NORM"), dict) and "IN" in first["NORM"]:
        return [[{"NORM": value}, *rest] for value in first["NORM"]["IN"]]
    lower = first.get("LOWER")
    if isinstance(lower, dict) and "IN" in lower:
        return [[{"LOWER": value}, *rest] for value in lower["IN"]]
    return [pattern]


def split_words(term: str) -> list[str]:
    """Split a term into words the way the tokenizer splits text: hyphens and slashes are tokens."""
    out: list[str] = []
    for chunk in term.lower().split():
        if chunk == "~" or "|" in chunk or chunk.endswith(("*", "?")):
            out.append(chunk)
            continue
        piece = ""
        for ch in chunk:
            if ch in "-/":
                if piece:
                    out.append(piece)
                out.append(ch)
                piece = ""
            else:
                piece += ch
        if piece:
            out.append(piece)
    return out
