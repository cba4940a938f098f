"""The router's ranking: BM25 per field with weights, explainable (the reasons add up to the
score), deterministic, and measured on the labelled intents of ``tests/mcp_intents.py``."""

from __future__ import annotations

import math

import pytest

from synapsex.actors.mcp_router.arguments import parse_intent
from synapsex.actors.mcp_router.ranking import (
    FIELD_WEIGHTS,
    SYNONYM_WEIGHT,
    CatalogIndex,
    ToolDoc,
    query_terms,
    split_words,
    stem,
    tool_doc,
)
from tests.mcp_intents import INTENTS, labelled_catalog

#: Measured when the set was written: top-1 46/50 (0.92), top-3 50/50. The floors let two
#: intents slip (a tool description edited in the fixture or in synapsex-ops-mcp moves one or
#: two) and still catch a real regression: without the synonym table top-1 falls to 0.86,
#: ranking on names and titles only gives 0.82 / 0.88.
TOP1_FLOOR = 0.88
TOP3_FLOOR = 0.96


@pytest.fixture(scope="module")
def catalog_index() -> CatalogIndex:
    import asyncio

    catalog = asyncio.run(labelled_catalog())
    return CatalogIndex(
        [
            tool_doc(f"{s}__{d.name}", d.name, d.title, d.description, d.input_schema, s)
            for s, d in catalog
        ]
    )


def test_labelled_intents_rank_their_tool_first_or_in_the_top_three(catalog_index):
    assert len(INTENTS) >= 40
    top1 = top3 = 0
    misses = []
    for labelled in INTENTS:
        ranked = catalog_index.search(parse_intent(labelled.intent).query_words, limit=3)
        keys = [r.key for r in ranked]
        top1 += keys[:1] == [labelled.tool]
        top3 += labelled.tool in keys
        if keys[:1] != [labelled.tool]:
            misses.append((labelled.intent, keys))
    n = len(INTENTS)
    report = f"top-1 {top1}/{n} = {top1 / n:.2f}, top-3 {top3}/{n} = {top3 / n:.2f}"
    print(report)  # shown with -s; the floors are asserted
    assert top1 / n >= TOP1_FLOOR, (report, misses)
    assert top3 / n >= TOP3_FLOOR, (report, misses)


def test_reasons_add_up_to_the_score_and_name_term_field_and_weight(catalog_index):
    ranked = catalog_index.search(parse_intent("pause the rollout").query_words, limit=5)
    best = ranked[0]
    assert best.key == "synapsex-ops-mcp__pause_rollout"
    assert math.isclose(sum(r.weight for r in best.reasons), best.score)
    fields = {(r.term, r.field) for r in best.reasons}
    assert ("pause", "name") in fields
    assert ("rollout", "name") in fields
    assert all(r.field in FIELD_WEIGHTS for r in best.reasons)
    weights = [r.weight for r in best.reasons]
    assert weights == sorted(weights, reverse=True)


def test_ranking_is_deterministic_and_ties_break_by_name():
    docs = [ToolDoc(key=k, name="list_things", title="List things") for k in ("b__x", "a__x")]
    index = CatalogIndex(docs)
    first = index.search(["list", "things"])
    assert [r.key for r in first] == ["a__x", "b__x"]
    assert first[0].score == first[1].score
    assert index.search(["list", "things"]) == first


def test_a_name_match_outweighs_the_same_word_in_a_description():
    index = CatalogIndex(
        [
            ToolDoc("s__archive_report", "archive_report", description="Store a report."),
            ToolDoc("s__store_note", "store_note", description="Archive a note for later."),
        ]
    )
    (first, second) = index.search(["archive"])
    assert first.key == "s__archive_report"
    assert first.score > second.score
    assert first.reasons[0].field == "name"


def test_rare_terms_weigh_more_than_common_ones():
    docs = [ToolDoc(f"s__list_{n}", f"list_{n}") for n in ("vms", "events", "rollouts")]
    index = CatalogIndex(docs)
    assert index.idf(stem("vms")) > index.idf(stem("list"))


def test_synonyms_count_at_a_reduced_weight_and_say_what_they_stand_for():
    terms = {t.label: t for t in query_terms(["halt", "rollout"])}
    assert terms["halt"].weight == 1.0
    assert terms["halt→pause"].weight == SYNONYM_WEIGHT
    index = CatalogIndex([ToolDoc("s__pause_rollout", "pause_rollout")])
    (ranked,) = index.search(["halt", "rollout"])
    assert {r.term for r in ranked.reasons} == {"rollout", "halt→pause"}


def test_intent_values_are_not_ranking_words():
    parsed = parse_intent('publish topic="orders.created" on vm_01JD3Q6V0Z9X8Y7W6V5T4S3R2Q 42')
    assert parsed.query_words == ["publish", "topic", "on"]


def test_identifiers_split_on_separators_and_camel_case():
    assert split_words("synapsex-ops-mcp__list_vms") == ["synapsex", "ops", "mcp", "list", "vms"]
    assert split_words("getWeatherForecast HTTPServer") == [
        "get",
        "weather",
        "forecast",
        "http",
        "server",
    ]


@pytest.mark.parametrize(
    ("words", "same"),
    [
        (("rollouts", "rollout"), True),
        (("paused", "pausing", "pause", "pauses"), True),
        (("running", "run", "runs"), True),
        (("policies", "policy"), True),
        (("vms", "vm"), True),
        (("status", "statuses"), True),
        (("list", "last"), False),
    ],
)
def test_the_stemmer_meets_word_forms(words, same):
    assert (len({stem(w) for w in words}) == 1) is same


def test_an_empty_catalog_or_query_ranks_nothing():
    assert CatalogIndex([]).search(["anything"]) == []
    assert CatalogIndex([ToolDoc("s__x", "x")]).search(["the", "a"]) == []
