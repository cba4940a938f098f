"""Explainable lexical ranking of MCP tools for an intent: BM25 per field, summed with weights.

Every tool is a document with five fields: its **name** (the tool's original name split on
``_``, ``-``, ``.``, ``__`` and camelCase), its **title**, its **description**, its
**parameters** (the input schema's property names, split the same way) and its **server**'s
name. A tool's score for a query is

    score(tool) = sum over fields f and terms t of
                  w_f * q_t * idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len_f / avglen_f))

with the classic BM25 term (``k1`` = 1.2, ``b`` = 0.75, Lucene's always-positive idf over the
whole catalog), each field normalised by its own average length, and the field weights of
:data:`FIELD_WEIGHTS`. ``q_term`` is 1 for a word of the intent and :data:`SYNONYM_WEIGHT` for a
word added by the small synonym table (``show`` also looks for ``get`` and ``list``).

Why a weighted sum of per-field BM25 and not BM25F (one saturation over the merged fields): the
sum is additive, so every (term, field) pair contributes an exact, separate amount, and the
``reasons`` of a candidate add up to its score. That is the explanation a person reads. BM25F's
single saturation would need an after-the-fact attribution. ``rank-bm25`` was not used for the
same reason: it returns one score per document, not the contributions of its terms.

Words are lower-cased, stop words dropped and a light suffix stemmer applied (``rollouts``,
``paused`` and ``pausing`` meet ``rollout`` and ``pause``). Ids, numbers and quoted strings of
the intent are arguments, not words to rank by (``arguments.parse_intent`` sets them apart).

Ranking is deterministic: equal scores are ordered by the tool's key. :class:`CatalogIndex` is
built once per catalog (tokenising 1,000 tools takes milliseconds; a query then only walks the
postings of its few terms) and is immutable, so a cached index can serve concurrent plans.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: how much a match in each field counts
FIELD_WEIGHTS: dict[str, float] = {
    "name": 3.0,
    "title": 2.0,
    "parameters": 1.5,
    "description": 1.0,
    "server": 0.5,
}
FIELDS: tuple[str, ...] = tuple(FIELD_WEIGHTS)
K1 = 1.2
B = 0.75
#: a word the synonym table added counts this much of a word the intent used
SYNONYM_WEIGHT = 0.5

_STOP_TEXT = (
    "a about above after again all also am an and any are as at be been before being below "
    "between both but by can could did do does doing down during each few for from further "
    "had has have having he her here hers herself him himself his how i if in into is it its "
    "itself just let me more most my myself no nor not now of off on once only or other our "
    "ours ourselves out over own please same she should so some such than that the their "
    "theirs them themselves then there these they this those through to too under until up "
    "us very was we were what when where which while who whom why will with would you your "
    "yours yourself yourselves want wants need needs like tell give using use via"
)
#: words that say nothing about which tool is meant
STOP_WORDS = frozenset(_STOP_TEXT.split())

#: groups of words that mean the same for tool selection (generic verbs and nouns, not tuned to
#: any catalog); each word of a group also looks for the others at SYNONYM_WEIGHT
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("get", "show", "display", "fetch", "read", "view", "describe", "inspect", "detail"),
    ("list", "show", "enumerate", "browse"),
    ("find", "search", "lookup", "query", "look"),
    ("delete", "remove", "drop", "destroy", "erase"),
    ("create", "make", "add", "new", "register"),
    ("pause", "halt", "suspend", "freeze", "stop"),
    ("resume", "continue", "unpause", "restart"),
    ("update", "change", "modify", "edit", "set"),
    ("publish", "send", "post", "emit", "push"),
    ("recent", "latest", "last", "newest"),
    ("vm", "machine", "host", "instance"),
    ("artifact", "file", "output"),
    ("text", "content", "contents"),
)

_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_RE = re.compile(r"[A-Za-z0-9]+")
_DOUBLE_END_RE = re.compile(r"([b-df-hj-kmnp-rtv-y])\1$")


# ---------------------------------------------------------------------------- words


@functools.lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A light, deterministic suffix stripper (plural ``s``/``es``/``ies``, ``ing``, ``ed``, a
    final ``e``), enough for ``rollouts``/``rollout`` and ``paused``/``pausing``/``pause`` to
    meet. Both the catalog and the intent go through it, so its mistakes are symmetric."""
    w = word.lower()
    if len(w) <= 2 or w.isdigit():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith(("ss", "us", "is")):
        pass
    elif w.endswith("es") and w[:-2].endswith(("x", "ch", "sh", "z")):
        w = w[:-2]
    elif w.endswith("s"):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            if _DOUBLE_END_RE.search(w):
                w = w[:-1]
            break
    if w.endswith("e") and len(w) >= 4:
        w = w[:-1]
    return w


def split_words(text: str) -> list[str]:
    """The words of ``text`` (identifiers split on ``_ - . __`` and camelCase), lower-cased."""
    out: list[str] = []
    for token in _WORD_RE.findall(text):
        out.extend(_split_token(token))
    return out


@functools.lru_cache(maxsize=65_536)
def _split_token(token: str) -> tuple[str, ...]:
    return tuple(part.lower() for part in _CAMEL_RE.split(token) if part)


def terms(text: str) -> list[str]:
    """The stemmed, non-stop words of ``text``, in order (repeats kept: they are frequencies)."""
    stop = STOP_WORDS
    return [
        stem(w) for token in _WORD_RE.findall(text) for w in _split_token(token) if w not in stop
    ]


def _synonyms() -> dict[str, tuple[tuple[str, str], ...]]:
    """stem -> ((stem, word), ...) of the other words of its groups."""
    table: dict[str, list[tuple[str, str]]] = {}
    for group in SYNONYM_GROUPS:
        pairs = [(stem(w), w) for w in group]
        for s, _ in pairs:
            mine = table.setdefault(s, [])
            mine.extend(p for p in pairs if p[0] != s and p[0] not in {m[0] for m in mine})
    return {k: tuple(v) for k, v in table.items()}


SYNONYMS: dict[str, tuple[tuple[str, str], ...]] = _synonyms()


@dataclass(frozen=True, slots=True)
class QueryTerm:
    """One term the query looks for: ``stem`` in the index, shown as ``label``."""

    stem: str
    label: str
    weight: float


def query_terms(words: Iterable[str]) -> tuple[QueryTerm, ...]:
    """The terms of a query from its words (``ParsedIntent.words``): each distinct stem once
    at weight 1, then the synonyms of those stems not already asked for, at
    :data:`SYNONYM_WEIGHT`, labelled ``word→synonym``. Deterministic order."""
    literal: dict[str, str] = {}
    for word in words:
        lw = word.lower()
        if lw in STOP_WORDS:
            continue
        literal.setdefault(stem(lw), lw)
    out = [QueryTerm(s, label, 1.0) for s, label in literal.items()]
    added: set[str] = set(literal)
    for s, label in literal.items():
        for other, word in SYNONYMS.get(s, ()):
            if other not in added:
                added.add(other)
                out.append(QueryTerm(other, f"{label}→{word}", SYNONYM_WEIGHT))
    return tuple(out)


# ---------------------------------------------------------------------------- the index


@dataclass(frozen=True, slots=True)
class ToolDoc:
    """What ranking reads of one tool; ``key`` identifies it (the exposed name)."""

    key: str
    name: str
    title: str = ""
    description: str = ""
    parameters: tuple[str, ...] = ()
    server: str = ""


def tool_doc(
    key: str,
    name: str,
    title: str | None,
    description: str,
    input_schema: Mapping[str, Any],
    server: str = "",
) -> ToolDoc:
    """The document of one tool: its parameters are the input schema's property names."""
    properties = input_schema.get("properties")
    params = tuple(properties) if isinstance(properties, Mapping) else ()
    return ToolDoc(key, name, title or "", description, params, server)


@dataclass(frozen=True, slots=True)
class Reason:
    """One matched term in one field and what it added to the score."""

    term: str
    weight: float
    field: str


@dataclass(frozen=True, slots=True)
class Ranked:
    key: str
    score: float
    #: largest contribution first; their weights add up to ``score``
    reasons: tuple[Reason, ...]


class CatalogIndex:
    """An immutable BM25 index of a catalog's tools (see the module docstring)."""

    def __init__(self, docs: Sequence[ToolDoc]) -> None:
        self.docs = tuple(docs)
        self.size = len(self.docs)
        # stem -> [(doc index, field, term frequency)]
        self._postings: dict[str, list[tuple[int, str, int]]] = {}
        df: Counter[str] = Counter()
        lengths: dict[str, list[int]] = {f: [] for f in FIELDS}
        for i, doc in enumerate(self.docs):
            fields = {
                "name": terms(doc.name),
                "title": terms(doc.title),
                "parameters": [t for p in doc.parameters for t in terms(p)],
                "description": terms(doc.description),
                "server": terms(doc.server),
            }
            seen: set[str] = set()
            for field, words in fields.items():
                lengths[field].append(len(words))
                for word, tf in Counter(words).items():
                    self._postings.setdefault(word, []).append((i, field, tf))
                    seen.add(word)
            df.update(seen)
        self._idf = {
            word: math.log(1.0 + (self.size - n + 0.5) / (n + 0.5)) for word, n in df.items()
        }
        # k1 * (1 - b + b * len/avglen) per document and field: the BM25 length norm
        self._norm: dict[str, list[float]] = {}
        for field, values in lengths.items():
            average = (sum(values) / len(values)) if values else 0.0
            self._norm[field] = [
                K1 * (1 - B + B * (n / average if average else 0.0)) for n in values
            ]

    def idf(self, term_stem: str) -> float:
        return self._idf.get(term_stem, 0.0)

    def rank(self, query: Sequence[QueryTerm], limit: int | None = None) -> list[Ranked]:
        """Tools with a positive score, best first (ties by key), at most ``limit``. Scores
        are summed per tool first; reasons are built only for the tools returned."""
        scores: dict[int, float] = {}
        matches: dict[int, list[tuple[QueryTerm, str, float]]] = {}
        for qt in query:
            postings = self._postings.get(qt.stem)
            if not postings:
                continue
            factor = qt.weight * self._idf[qt.stem] * (K1 + 1)
            for i, field, tf in postings:
                value = FIELD_WEIGHTS[field] * factor * tf / (tf + self._norm[field][i])
                scores[i] = scores.get(i, 0.0) + value
                matches.setdefault(i, []).append((qt, field, value))
        docs = self.docs
        order = sorted(
            (i for i, score in scores.items() if score > 0),
            key=lambda i: (-scores[i], docs[i].key),
        )
        if limit is not None:
            order = order[:limit]
        ranked = []
        for i in order:
            reasons = sorted(
                (Reason(qt.label, value, field) for qt, field, value in matches[i]),
                key=lambda r: (-r.weight, r.term, r.field),
            )
            ranked.append(Ranked(docs[i].key, math.fsum(r.weight for r in reasons), tuple(reasons)))
        return ranked

    def search(self, words: Iterable[str], limit: int | None = None) -> list[Ranked]:
        """:meth:`rank` for the words of a query (synonyms added)."""
        return self.rank(query_terms(words), limit)


__all__ = [
    "FIELDS",
    "FIELD_WEIGHTS",
    "K1",
    "STOP_WORDS",
    "SYNONYMS",
    "SYNONYM_WEIGHT",
    "B",
    "CatalogIndex",
    "QueryTerm",
    "Ranked",
    "Reason",
    "ToolDoc",
    "query_terms",
    "split_words",
    "stem",
    "terms",
    "tool_doc",
]
