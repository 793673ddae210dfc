"""Kept answers: a repeated query is answered from memory until the index changes.

Every write (add, update, remove, replace a member, rebuild) must make the next query
run again and see the change; the row limit, the refusals and the time limit still
hold for a kept answer as for a fresh one.
"""

from __future__ import annotations

import json

import pytest
from hub_support import actor, make_index, practice

from node.hub.query_cache import AnswerCache, cache_key
from node.hub.query_runner import (
    QueryError,
    QueryErrorKind,
    QueryOptions,
    SelectOutcome,
    ThreadRunner,
)
from node.hub.sparql import example_by_slug, example_queries, execute_sparql
from node.hub.warm_answers import AnswerWarmer

HOST = "guetersloh.example"
NAMES = "SELECT ?n WHERE { ?s <https://www.w3.org/ns/activitystreams#name> ?n } ORDER BY ?n"


class CountingRunner(ThreadRunner):
    """A ThreadRunner that counts the queries it really evaluates."""

    def __init__(self) -> None:
        super().__init__(max_concurrent=2)
        self.evaluated = 0

    def run(self, store, text, limits, options):
        self.evaluated += 1
        return super().run(store, text, limits, options)


def names(index, **kwargs) -> list[str]:
    outcome = index.query(NAMES, timeout=5, max_rows=100, **kwargs)
    return [row["n"]["value"] for row in outcome.rows]


@pytest.fixture
def counted():
    runner = CountingRunner()
    index = make_index(runner)
    index.add_contribution(actor(HOST), practice(HOST, "a", name="Alpha"))
    return index, runner


def test_a_repeated_query_is_answered_without_evaluating_it_again(counted):
    index, runner = counted
    assert names(index) == ["Alpha"]
    assert names(index) == ["Alpha"]
    assert runner.evaluated == 1
    assert names(index, reuse=False) == ["Alpha"] and runner.evaluated == 2


@pytest.mark.parametrize("change", ["add", "update", "remove", "replace_member", "rebuild"])
def test_every_write_makes_the_next_answer_show_the_change(counted, change):
    index, runner = counted
    assert names(index) == ["Alpha"]
    first = practice(HOST, "a", name="Alpha")
    expected = {
        "add": ["Alpha", "Beta"], "update": ["Alpha (neu)"], "remove": [],
        "replace_member": ["Gamma"], "rebuild": ["Delta"],
    }[change]
    if change == "add":
        index.add_contribution(actor(HOST), practice(HOST, "b", name="Beta"))
    elif change == "update":
        index.add_contribution(actor(HOST), {**first, "name": "Alpha (neu)"})
    elif change == "remove":
        index.remove_contribution(first["id"])
    elif change == "replace_member":
        index.replace_member(actor(HOST), [practice(HOST, "g", name="Gamma")])
    else:
        index.rebuild([(actor(HOST), practice(HOST, "d", name="Delta"))])
    assert names(index) == expected
    assert runner.evaluated == 2
    assert names(index) == expected and runner.evaluated == 2  # kept again until the next write


def test_an_example_aggregate_changes_when_the_data_changes(counted):
    index, _ = counted
    query = example_by_slug("contributions-by-municipality").sparql

    def counts() -> list[str]:
        outcome = index.query(query, timeout=5, max_rows=500)
        return [row["contributions"]["value"] for row in outcome.rows]

    assert counts() == ["1"]
    index.add_contribution(actor(HOST), practice(HOST, "b", name="Beta"))
    assert counts() == ["2"]


def test_a_kept_answer_still_obeys_the_askers_row_limit(counted):
    index, _ = counted
    index.add_contribution(actor(HOST), practice(HOST, "b", name="Beta"))
    assert len(names(index)) == 2
    with pytest.raises(QueryError) as caught:
        index.query(NAMES, timeout=5, max_rows=1)
    assert caught.value.kind is QueryErrorKind.TOO_MANY_ROWS


def test_refused_and_failed_queries_are_never_kept(counted):
    index, runner = counted
    service = "SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }"
    for _ in range(2):
        with pytest.raises(QueryError) as caught:
            index.query(service, timeout=5, max_rows=10)
        assert caught.value.kind is QueryErrorKind.SERVICE_REFUSED
        with pytest.raises(QueryError) as syntax:
            index.query("SELECT WHERE {", timeout=5, max_rows=10)
        assert syntax.value.kind is QueryErrorKind.SYNTAX
    assert runner.evaluated == 4  # each of them reached the runner again


def test_an_answer_computed_while_a_write_was_under_way_is_not_kept():
    cache = AnswerCache()
    key = cache_key("ASK {}", QueryOptions())
    answer = SelectOutcome(("n",), ())
    cache.put(key, 4, 6, answer)  # the index moved on during the query
    assert cache.get(key, 6, 10) is None and cache.get(key, 4, 10) is None
    cache.put(key, 6, 6, answer)
    assert cache.get(key, 6, 10) is answer
    assert cache.get(key, 8, 10) is None  # the next write makes it stale


def test_the_cache_keeps_only_small_answers_and_a_bounded_number():
    cache = AnswerCache(max_entries=2)
    big = SelectOutcome(("n",), tuple({"n": {"type": "literal", "value": str(i)}} for i in range(5000)))
    cache.put("big", 0, 0, big)
    assert cache.get("big", 0, 10_000) is None
    for key in ("a", "b", "c"):
        cache.put(key, 0, 0, SelectOutcome(("n",), ()))
    assert cache.get("a", 0, 10) is None and cache.get("c", 0, 10) is not None


def test_the_examples_are_warmed_once_the_index_has_been_quiet(counted):
    index, runner = counted
    now = [0.0]
    warmer = AnswerWarmer(quiet_seconds=30, monotonic=lambda: now[0])
    assert not warmer.due(index)
    now[0] = 31
    assert warmer.due(index)
    assert warmer.warm(index) == len(example_queries())
    assert runner.evaluated == len(example_queries())
    assert not warmer.due(index)  # warm already
    # a visitor's query (the endpoint's options and limits) is answered from memory
    example = example_by_slug("contributions-by-municipality")
    answer = json.loads(execute_sparql(index, example.sparql).body)
    assert [row["contributions"]["value"] for row in answer["results"]["bindings"]] == ["1"]
    assert runner.evaluated == len(example_queries())
    index.add_contribution(actor(HOST), practice(HOST, "b", name="Beta"))
    assert not warmer.due(index)  # changed just now
    now[0] = 50
    assert not warmer.due(index)
    now[0] = 62
    assert warmer.due(index)
    warmer.warm(index)
    answer = json.loads(execute_sparql(index, example.sparql).body)
    assert [row["contributions"]["value"] for row in answer["results"]["bindings"]] == ["2"]
    assert runner.evaluated == 2 * len(example_queries())


def test_a_form_submission_with_crlf_line_ends_finds_the_kept_answer(counted):
    index, runner = counted
    example = example_by_slug("practices-by-topic")
    execute_sparql(index, example.sparql)
    execute_sparql(index, example.sparql.replace("\n", "\r\n"))
    assert runner.evaluated == 1
    literal = 'SELECT * WHERE { ?s ?p """a\r\nb""" }'
    assert cache_key(literal, QueryOptions()) != cache_key(literal.replace("\r\n", "\n"), QueryOptions())
