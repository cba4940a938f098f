"""Arguments of a plan: what the caller gave, what the intent says safely, what is missing.

A plan's arguments come from two places. The caller's ``arguments`` (JSON) always win; they are
checked against the chosen tool's input schema (an unknown parameter, or a value of the wrong
JSON type, is ``INVALID_INPUT`` naming ``arguments.<name>``). Then, for parameters still empty,
the intent is read for values that can be matched **without guessing**:

* ``name=value`` and ``name: value`` where ``name`` is a parameter (``limit=5``,
  ``topic: orders.created``), the value converted to the parameter's type;
* ids in the project's format (``<prefix>_`` and 26 Crockford base32 characters, see
  ``synapsex.runtime.ids``) for parameters named ``…_id`` / ``…Id``: the word just before the id
  names the parameter (``rollout rol_01J…`` → ``rolloutId``), or the id's prefix spells it
  (``wsp`` → ``workspace_id``); a parameter named just ``id`` takes the one id of an intent;
* quoted strings (``"…"``, ``'…'``, ``“…”``) for string parameters: the word before the quote
  names the parameter (``topic "orders.created"``), or it is the intent's only quoted string
  and the tool's only free string parameter;
* numbers for integer / number parameters: a word next to the number names the parameter
  (``limit 20``, ``20 per page`` does not), or it is the only number and the only numeric
  parameter (``the last 20 events`` → ``limit``); values outside the schema's bounds are left;
* an enum value written as a word of the intent (``AGENT``), when exactly one appears.

Anything ambiguous is left alone: a required parameter nobody filled is listed as missing, and
never invented. Booleans, arrays and objects only come from ``arguments`` or ``name=value``.

The plan is bound to its arguments by :func:`arguments_sha256`: SHA-256 of the canonical JSON
(keys sorted, no white space, UTF-8) of the arguments object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synapsex.contracts.errors import InvalidInput

from .ranking import STOP_WORDS, split_words, stem

#: an id as ``synapsex.runtime.ids.new_id`` makes them
ID_RE = re.compile(r"(?<![A-Za-z0-9_])([a-z][a-z0-9]{0,9}_[0-9A-HJKMNP-TV-Z]{26})(?![A-Za-z0-9_])")
_QUOTED_RE = re.compile(
    r"\"([^\"]*)\"|(?<![\w])'([^']*)'(?![\w])|\u201c([^\u201d]*)\u201d|\u2018([^\u2019]*)\u2019"
)
_PAIR_RE = re.compile(
    r"(?<![\w.-])([A-Za-z_][A-Za-z0-9_-]*)\s*(?:=|:)\s*"
    r"(\"[^\"]*\"|'[^']*'|\[[^\]]*\]|\{[^}]*\}|[^\s,;]+)"
)
_NUMBER_RE = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w.])")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
#: words between a parameter's name and its value that do not break the link
_LINK_WORDS = frozenset({"is", "of", "to", "=", "named", "called", "with", "at", "the", "a", "an"})

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")


# ---------------------------------------------------------------------------- canonical form


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no white space (non-ASCII kept as is)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def arguments_sha256(arguments: Mapping[str, Any]) -> str:
    """Lower-case hex SHA-256 of the canonical JSON of ``arguments`` (UTF-8)."""
    return hashlib.sha256(canonical_json(dict(arguments)).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------- the intent


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ParsedIntent:
    """The intent split into words to rank by and the values it carries."""

    text: str
    #: words outside quotes, ids, numbers and ``name=value`` values, in order
    words: tuple[Token, ...]
    ids: tuple[Token, ...]
    quoted: tuple[Token, ...]
    numbers: tuple[Token, ...]
    #: ``(name, raw value)`` of ``name=value`` / ``name: value``
    pairs: tuple[tuple[Token, Token], ...]

    @property
    def query_words(self) -> list[str]:
        """The words to rank tools by (identifiers split, lower-cased)."""
        return [w for token in self.words for w in split_words(token.text)]


def parse_intent(text: str) -> ParsedIntent:
    """Split ``text`` into words and values (see the module docstring)."""
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    quoted = []
    for m in _QUOTED_RE.finditer(text):
        group = next(i for i in range(1, 5) if m.group(i) is not None)
        quoted.append(Token(m.group(group), m.start(), m.end()))
        taken.append((m.start(), m.end()))
    ids = []
    for m in ID_RE.finditer(text):
        if free(m.start(), m.end()):
            ids.append(Token(m.group(1), m.start(), m.end()))
            taken.append((m.start(), m.end()))
    numbers = []
    for m in _NUMBER_RE.finditer(text):
        if free(m.start(), m.end()):
            numbers.append(Token(m.group(1), m.start(), m.end()))
            taken.append((m.start(), m.end()))
    pairs = []
    for m in _PAIR_RE.finditer(text):
        if not free(m.start(1), m.end(1)) or m.group(2).startswith("//"):
            continue  # inside quotes, or a URL's scheme
        name = Token(m.group(1), m.start(1), m.end(1))
        value = Token(m.group(2), m.start(2), m.end(2))
        pairs.append((name, value))
        if not value.text.isalpha():  # data (orders.created, [1, 2]), not a word to rank by
            taken.append((value.start, value.end))
    words = [
        Token(m.group(0), m.start(), m.end())
        for m in _WORD_RE.finditer(text)
        if free(m.start(), m.end())
    ]
    return ParsedIntent(
        text=text,
        words=tuple(words),
        ids=tuple(ids),
        quoted=tuple(quoted),
        numbers=tuple(numbers),
        pairs=tuple(pairs),
    )


# ---------------------------------------------------------------------------- the schema


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    #: JSON types the value may have (empty: anything)
    types: tuple[str, ...]
    enum: tuple[Any, ...] | None
    required: bool
    schema: Mapping[str, Any]
    #: stems of the name's words (``rollout_id`` → ``("rollout", "id")``)
    stems: tuple[str, ...]

    @property
    def is_id(self) -> bool:
        return bool(self.stems) and self.stems[-1] == "id" and self.accepts("string")

    def accepts(self, json_type: str) -> bool:
        return (
            not self.types
            or json_type in self.types
            or (json_type == "integer" and "number" in self.types)
        )


def _types(schema: Mapping[str, Any]) -> tuple[str, ...]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return (declared,)
    if isinstance(declared, list):
        return tuple(t for t in declared if isinstance(t, str))
    out: list[str] = []
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or ():
            if isinstance(sub, Mapping):
                out.extend(t for t in _types(sub) if t not in out)
    return tuple(out)


def _enum(schema: Mapping[str, Any]) -> tuple[Any, ...] | None:
    if isinstance(schema.get("enum"), list):
        return tuple(schema["enum"])
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or ():
            if isinstance(sub, Mapping) and isinstance(sub.get("enum"), list):
                return tuple(sub["enum"])
    return None


def parameters(input_schema: Mapping[str, Any]) -> dict[str, Param]:
    """The top-level parameters of a tool's input schema, by name."""
    properties = input_schema.get("properties") or {}
    required = set(input_schema.get("required") or ())
    out = {}
    for name, schema in properties.items() if isinstance(properties, Mapping) else ():
        schema = schema if isinstance(schema, Mapping) else {}
        out[name] = Param(
            name=name,
            types=_types(schema),
            enum=_enum(schema),
            required=name in required,
            schema=schema,
            stems=tuple(stem(w) for w in split_words(name)),
        )
    return out


def type_problem(value: Any, param: Param) -> str | None:
    """Why ``value`` does not fit ``param`` (its JSON type, its enum), or ``None``."""
    if param.types and not any(_is_type(value, t) for t in param.types):
        return f"must be {' or '.join(_describe(t) for t in param.types)}"
    if param.enum is not None and value not in param.enum:
        return f"must be one of {', '.join(json.dumps(v) for v in param.enum)}"
    return None


def _is_type(value: Any, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        return type(value) is int or (type(value) is float and value.is_integer())
    if json_type == "number":
        return type(value) in (int, float)
    if json_type == "boolean":
        return type(value) is bool
    if json_type == "array":
        return isinstance(value, list)
    if json_type == "object":
        return isinstance(value, dict)
    if json_type == "null":
        return value is None
    return True  # a type this check does not know: the server decides


def _describe(json_type: str) -> str:
    return {"integer": "an integer", "array": "an array", "object": "an object"}.get(
        json_type, "null" if json_type == "null" else f"a {json_type}"
    )


def check_arguments(
    arguments: Mapping[str, Any], input_schema: Mapping[str, Any], tool: str
) -> None:
    """``INVALID_INPUT`` on ``arguments.<name>`` for an unknown parameter or a value of the
    wrong type (only top-level types and enums are checked here; the server checks the rest)."""
    params = parameters(input_schema)
    for name, value in arguments.items():
        param = params.get(name)
        if param is None:
            known = ", ".join(params) or "none"
            raise InvalidInput(
                f"arguments.{name}", f"the tool {tool} takes no such parameter (it takes: {known})"
            )
        problem = type_problem(value, param)
        if problem is not None:
            raise InvalidInput(f"arguments.{name}", problem)


def missing_arguments(
    arguments: Mapping[str, Any], input_schema: Mapping[str, Any]
) -> tuple[str, ...]:
    """Required parameters without a value, in the schema's order."""
    return tuple(
        p.name for p in parameters(input_schema).values() if p.required and p.name not in arguments
    )


# ---------------------------------------------------------------------------- extraction


@dataclass(frozen=True, slots=True)
class ArgumentPlan:
    arguments: dict[str, Any]
    #: required parameters still without a value
    missing: tuple[str, ...]
    #: parameter -> where its value came from (``"the intent: rollout rol_…"``)
    sources: dict[str, str] = field(default_factory=dict)


def plan_arguments(
    intent: ParsedIntent | str,
    supplied: Mapping[str, Any],
    input_schema: Mapping[str, Any],
    tool: str,
) -> ArgumentPlan:
    """The arguments of a plan for one tool: ``supplied`` (checked, see
    :func:`check_arguments`), then what the intent gives safely; and what is still missing."""
    parsed = parse_intent(intent) if isinstance(intent, str) else intent
    check_arguments(supplied, input_schema, tool)
    params = parameters(input_schema)
    values: dict[str, Any] = dict(supplied)
    sources = dict.fromkeys(supplied, "arguments")
    _Extractor(parsed, params, values, sources).run()
    ordered = {name: values[name] for name in params if name in values}
    return ArgumentPlan(
        arguments=ordered,
        missing=tuple(p.name for p in params.values() if p.required and p.name not in values),
        sources={name: sources[name] for name in ordered},
    )


class _Extractor:
    def __init__(
        self,
        intent: ParsedIntent,
        params: dict[str, Param],
        values: dict[str, Any],
        sources: dict[str, str],
    ) -> None:
        self.intent = intent
        self.params = params
        self.values = values
        self.sources = sources
        # every word of the text with its position, to find the word next to a value
        self.all_words = [(m.group(0), m.start(), m.end()) for m in _WORD_RE.finditer(intent.text)]
        # spans of the text a name=value already used
        self.used: list[tuple[int, int]] = []

    def _unused(self, tokens: tuple[Token, ...]) -> list[Token]:
        return [t for t in tokens if all(t.end <= a or t.start >= b for a, b in self.used)]

    def run(self) -> None:
        self._pairs()
        self._ids()
        self._quoted()
        self._numbers()
        self._enums()

    def _open(self, accept: Any = None) -> list[Param]:
        return [
            p
            for p in self.params.values()
            if p.name not in self.values and (accept is None or accept(p))
        ]

    def _set(self, param: Param, value: Any, source: str) -> None:
        self.values[param.name] = value
        self.sources[param.name] = f"the intent: {source}"

    # -- name=value

    def _pairs(self) -> None:
        by_key = {_key(name): p for name, p in self.params.items()}
        for name, raw in self.intent.pairs:
            param = by_key.get(_key(name.text))
            if param is None or param.name in self.values:
                continue
            value = _convert(raw.text, param)
            if value is not _NO_VALUE:
                self._set(param, value, f"{name.text}={raw.text}")
                self.used.append((raw.start, raw.end))

    # -- ids

    def _ids(self) -> None:
        ids = self._unused(self.intent.ids)
        for token in ids:
            prefix = token.text.split("_", 1)[0]
            before = self._word_before(token.start)
            best: list[tuple[int, Param]] = []
            for p in self._open(lambda p: p.is_id):
                head = p.stems[:-1]
                score = 0
                if before is not None and head and stem(before) in head:
                    score = 2
                elif head and any(_spells(prefix, w) for w in split_words(p.name)[:-1]):
                    score = 1
                elif not head and len(ids) == 1:
                    score = 1  # a parameter named just "id", and one id in the intent
                if score:
                    best.append((score, p))
            if not best:
                continue
            top = max(score for score, _ in best)
            winners = [p for score, p in best if score == top]
            if len(winners) == 1:
                self._set(winners[0], token.text, _excerpt(self.intent.text, token, before))

    # -- quoted strings

    def _quoted(self) -> None:
        open_strings = self._open(lambda p: p.accepts("string") and not p.is_id)
        quoted = self._unused(self.intent.quoted)
        unclaimed = []
        for token in quoted:
            before = self._word_before(token.start)
            named = [p for p in open_strings if before is not None and _names(before, p)]
            named = [p for p in named if p.name not in self.values and _fits(token.text, p)]
            if len(named) == 1:
                self._set(named[0], token.text, _excerpt(self.intent.text, token, before))
            else:
                unclaimed.append(token)
        rest = [p for p in open_strings if p.name not in self.values and p.enum is None]
        if len(quoted) == 1 and len(unclaimed) == 1 and len(rest) == 1:
            self._set(rest[0], unclaimed[0].text, f"the only quoted string {unclaimed[0].text!r}")

    # -- numbers

    def _numbers(self) -> None:
        numeric = self._open(lambda p: p.accepts("integer") or p.accepts("number"))
        numeric = [p for p in numeric if p.types]  # "anything" is not a numeric parameter
        numbers = self._unused(self.intent.numbers)
        unclaimed = []
        for token in numbers:
            value = _number(token.text)
            named: list[Param] = []
            # the word before binds closer ("limit 20 events"); then the word after ("20 items")
            for word, shown in (
                (self._word_before(token.start), "{w} {n}"),
                (self._word_after(token.end), "{n} {w}"),
            ):
                if word is None:
                    continue
                named = [
                    p
                    for p in numeric
                    if p.name not in self.values and _names(word, p) and _number_fits(value, p)
                ]
                if named:
                    source = shown.format(w=word, n=token.text)
                    break
            if len(named) == 1:
                self._set(named[0], _as_type(value, named[0]), source)
            else:
                unclaimed.append(token)
        rest = [p for p in numeric if p.name not in self.values]
        if len(numbers) == 1 and len(unclaimed) == 1 and len(rest) == 1:
            value = _number(unclaimed[0].text)
            if _number_fits(value, rest[0]):
                self._set(rest[0], _as_type(value, rest[0]), f"the only number {unclaimed[0].text}")

    # -- enums

    def _enums(self) -> None:
        words = {w.lower() for w, _, _ in self.all_words}
        for p in self._open(lambda p: p.enum is not None):
            found = [v for v in p.enum or () if isinstance(v, str) and v.lower() in words]
            if len(found) == 1:
                self._set(p, found[0], f"the word {found[0]!r}")

    # -- neighbours

    def _word_before(self, position: int) -> str | None:
        candidates = [w for w, _, end in self.all_words if end <= position]
        while candidates and candidates[-1].lower() in _LINK_WORDS:
            candidates.pop()
        return candidates[-1] if candidates else None

    def _word_after(self, position: int) -> str | None:
        for w, start, _ in self.all_words:
            if start >= position and w.lower() not in STOP_WORDS:
                return w
        return None


_NO_VALUE = object()


def _key(name: str) -> str:
    return re.sub(r"[_\-]", "", name).lower()


def _spells(prefix: str, word: str) -> bool:
    """Whether an id prefix abbreviates ``word``: same first letter, letters in order
    (``wsp`` → workspace, ``rol`` → rollout, ``vm`` → vm)."""
    word = word.lower()
    if not prefix or not word or prefix[0] != word[0]:
        return False
    rest = iter(word[1:])
    return all(ch in rest for ch in prefix[1:])


def _names(word: str, param: Param) -> bool:
    """Whether ``word`` of the intent names ``param`` (one of its name's words, or the whole)."""
    s = stem(word.lower())
    return s in param.stems or _key(word) == _key(param.name)


def _fits(text: str, param: Param) -> bool:
    return param.enum is None or text in param.enum


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def _number_fits(value: int | float, param: Param) -> bool:
    if isinstance(value, float) and not value.is_integer() and not param.accepts("number"):
        return False
    if param.types and "integer" not in param.types and "number" not in param.types:
        return False
    schema = param.schema
    for key, ok in (
        ("minimum", lambda bound: value >= bound),
        ("maximum", lambda bound: value <= bound),
        ("exclusiveMinimum", lambda bound: value > bound),
        ("exclusiveMaximum", lambda bound: value < bound),
    ):
        bound = schema.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool) and not ok(bound):
            return False
    return param.enum is None or value in param.enum


def _as_type(value: int | float, param: Param) -> int | float:
    if "integer" in param.types and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _convert(raw: str, param: Param) -> Any:
    """``raw`` (text of the intent) as a value of ``param``'s type, or ``_NO_VALUE``."""
    text = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'" else raw
    candidates: list[Any] = []
    if raw[:1] in "[{" or text in ("true", "false", "null"):
        with contextlib.suppress(ValueError):
            candidates.append(json.loads(raw))
    if _NUMBER_RE.fullmatch(text):
        candidates.append(_number(text))
    candidates.append(text)
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not _number_fits(value, param):
                continue
            value = _as_type(value, param)
        if type_problem(value, param) is None:
            return value
    return _NO_VALUE


def _excerpt(text: str, token: Token, before: str | None) -> str:
    return f"{before} {text[token.start : token.end]}" if before else text[token.start : token.end]


__all__ = [
    "ID_RE",
    "ArgumentPlan",
    "Param",
    "ParsedIntent",
    "arguments_sha256",
    "canonical_json",
    "check_arguments",
    "missing_arguments",
    "parameters",
    "parse_intent",
    "plan_arguments",
    "type_problem",
]
