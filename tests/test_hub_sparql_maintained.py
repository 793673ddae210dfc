"""Maintained answers of the example queries (node/hub/maintained_answers.py): after EVERY
write of random sequences (add, update, remove, replace a member; stances about other
members' practices; a practice in two members' graphs; statements about other
documents (nested objects with their ids) that go with the document making them; tied names, names that are
prefixes of others, language-tagged and IRI names; an unbound OPTIONAL; counts tied
across the LIMIT cut) the maintained answer is the answer full evaluation gives on the
same store. Rows tied on every ORDER BY key may come in another order (SPARQL leaves it
open); everything else must be identical."""

from __future__ import annotations

import random

import pytest
from hub_support import actor, make_index, practice, stance
from test_hub_query_cache import CountingRunner

from node.hub.maintained_answers import MaintainedQuery
from node.hub.query_runner import SelectOutcome
from node.hub.sparql import QUERY_OPTIONS, example_by_slug, maintained_examples
from node.hub.warm_answers import AnswerWarmer

DISTRICT_KEY = "http://dcat-ap.de/def/politicalGeocoding/districtKey/"
SECTION = "https://hub.example/handbook/sections/"
NAMES = ("E-Akte", "E-Akte Pilot", "E-Akte\tBauamt", "E-Akte\u0001", "Ärger", "Zebra",
         "\U0001f4c1 Akte", "", "Bürgerportal", "e-akte", "E")
# The variables each example sorts on (ORDER BY, without the computed keys).
ORDERED = {
    "practices-by-topic": ("name", "practice", "member"),
    "e-file-in-operation": ("name", "practice"),
    "e-file-by-districts-in-operation": ("name", "practice", "member"),
    "experiences-disagreeing-with-section": ("section", "experience"),
    "disagreements-by-practice": ("disagreements", "practice"),
    "contributions-by-municipality": ("contributions", "municipalityKey"),
}
MEMBERS = tuple(f"m{number}.example" for number in range(5))


def _with_limit(query: MaintainedQuery, limit: int) -> MaintainedQuery:
    text = query.text.rstrip().rsplit("LIMIT", 1)[0] + f"LIMIT {limit}\n"
    return MaintainedQuery(query.slug, text, query.options, query.upkeep)


def _queries() -> list[MaintainedQuery]:
    queries = list(maintained_examples())
    return queries + [_with_limit(query, 4) for query in queries]


def _same_answer(slug: str, maintained: SelectOutcome, evaluated: SelectOutcome) -> None:
    """The same rows in the same order, up to the order of rows tied on every ORDER BY
    key; a tie group cut by the LIMIT may hold other rows of that group."""
    assert maintained.variables == evaluated.variables
    assert len(maintained.rows) == len(evaluated.rows)
    ordered = ORDERED[slug]

    def keys(rows):
        return [tuple(repr(row.get(name)) for name in ordered) for row in rows]

    assert keys(maintained.rows) == keys(evaluated.rows)
    groups: dict[tuple[str, ...], list[list[str]]] = {}
    for name, rows in (("m", maintained.rows), ("e", evaluated.rows)):
        for key, row in zip(keys(rows), rows, strict=True):
            groups.setdefault(key, [[], []])[name == "e"].append(repr(sorted(row.items())))
    last = keys(evaluated.rows)[-1] if evaluated.rows else None
    for key, (mine, theirs) in groups.items():
        if key != last:
            assert sorted(mine) == sorted(theirs), (slug, key)


class Checker:
    """Compares every maintained query with its evaluation after each write."""

    def __init__(self, index, runner: CountingRunner, queries: list[MaintainedQuery]) -> None:
        self.index, self.runner, self.queries = index, runner, queries
        self.served = 0
        self.evaluated_instead = 0

    def check(self) -> list[SelectOutcome]:
        answers = []
        for query in self.queries:
            before = self.runner.evaluated
            maintained = self.index.query(query.text, timeout=30, max_rows=10_000,
                                          options=query.options)
            if self.runner.evaluated == before:
                self.served += 1
            else:
                self.evaluated_instead += 1
            evaluated = self.index.query(query.text, timeout=30, max_rows=10_000,
                                         options=query.options, reuse=False)
            _same_answer(query.slug, maintained, evaluated)
            answers.append(maintained)
        return answers


def _maintaining(queries=None, slugs=None):
    """An index maintaining ``queries`` (default: the examples; only ``slugs`` if given),
    its counting runner, and a checker of those queries."""
    runner = CountingRunner()
    index = make_index(runner)
    chosen = list(maintained_examples() if queries is None else queries)
    if slugs is not None:
        chosen = [query for query in chosen if query.slug in slugs]
    index.maintain(chosen)
    return index, runner, Checker(index, runner, chosen)


def _random_practice(rng: random.Random, host: str, slug: str) -> dict:
    document = practice(
        host, slug,
        name=rng.choice(NAMES),
        status=rng.choice(("in-operation", "in-operation", "planned", "piloting")),
        topics=rng.choice((("e-akte",), ("e-akte",), ("strategie",), ("e-akte", "strategie"))),
        ags=f"{5_000_000 + rng.randrange(4):08d}",
    )
    roll = rng.random()
    if roll < 0.15:
        del document["municipalityKey"]  # the OPTIONAL stays unbound
    elif roll < 0.55:
        document["municipalityKey"] = DISTRICT_KEY + f"{5_754 + rng.randrange(3):05d}"
    roll = rng.random()
    if roll < 0.15:  # language-tagged, in texts of their own
        del document["name"]
        document["nameMap"] = {rng.choice(("de", "en")): "Sprache " + rng.choice(NAMES)}
    elif roll < 0.2:
        document["name"] = {"id": f"https://names.example/{rng.randrange(3)}"}
    return document


def _random_stance(rng: random.Random, host: str, slug: str) -> dict:
    if rng.random() < 0.4:
        about = SECTION + rng.choice(("a", "b"))
    else:
        about = f"https://{rng.choice(MEMBERS)}/practices/p{rng.randrange(4)}"
    document = stance(host, slug, about=about, position=rng.choice(("disagree", "disagree", "agree")),
                      reason=rng.choice(("", "zu teuer")))
    if rng.random() < 0.3:
        del document["reason"]
    return document


def _random_experience(rng: random.Random, host: str, slug: str) -> dict:
    document = stance(host, slug, about=SECTION + rng.choice(("a", "b")), position="agree")
    for field in ("position", "reason"):
        del document[field]
    return {**document, "id": f"https://{host}/experiences/{slug}",
            "type": ["Article", "Experience"], "name": rng.choice(NAMES)}


def _with_claim(rng: random.Random, document: dict) -> dict:
    """A nested object with another document's id: statements about that one, made in
    this document's graph (they go when this document goes or drops them)."""
    target = f"https://{rng.choice(MEMBERS)}/{rng.choice(('practices/p', 'stances/s'))}{rng.randrange(4)}"
    item: dict = {"id": target, "name": rng.choice(NAMES)}
    roll = rng.random()
    if roll < 0.4:
        item.update(type=["Article", "Practice"], status="in-operation",
                    topic=["https://w3id.org/praxisnetz/topics#e-akte"])
    elif roll < 0.8:
        item.update(type=["Note", "Stance"], position="disagree",
                    about=f"https://{rng.choice(MEMBERS)}/practices/p{rng.randrange(4)}")
    return {**document, "attachment": [item]}


def _random_document(rng: random.Random, host: str, claims: random.Random) -> dict:
    kind = rng.random()
    if kind < 0.5:
        document = _random_practice(rng, host, f"p{rng.randrange(4)}")
    elif kind < 0.8:
        document = _random_stance(rng, host, f"s{rng.randrange(4)}")
    else:
        document = _random_experience(rng, host, f"e{rng.randrange(2)}")
    return _with_claim(claims, document) if claims.random() < 0.25 else document


def _random_write(rng: random.Random, index, written: dict[str, tuple[str, dict]],
                  claims: random.Random) -> None:
    """One random write; ``claims`` decides the statements about other documents (a
    stream of its own, so that ``rng``'s sequences of writes stay as they were)."""
    host = rng.choice(MEMBERS)
    roll = rng.random()
    if roll < 0.7 or not written:
        document = _random_document(rng, host, claims)
        index.add_contribution(actor(host), document)
        written[document["id"]] = (host, document)
    elif roll < 0.85:
        uri = rng.choice(sorted(written))
        index.remove_contribution(uri)
        del written[uri]
    else:  # the member's graph afresh, with another member's practice in it as well
        own = [document for uri, (owner, document) in written.items() if owner == host]
        keep = [document for document in own if rng.random() < 0.7]
        others = [document for uri, (owner, document) in sorted(written.items())
                  if owner != host and "/practices/" in uri]
        if others and rng.random() < 0.6:
            shared = dict(rng.choice(others))
            shared["attributedTo"] = [shared["attributedTo"], actor(host)]
            keep.append(shared)
        index.replace_member(actor(host), keep)
        for document in own:
            if document not in keep:
                written.pop(document["id"], None)


@pytest.mark.parametrize(
    ("seed", "every", "max_pending"),
    # after every write; after every 7th (the partitions of several writes evaluated by
    # one query); with at most 3 partitions waiting (evaluated at the write instead)
    [(1, 1, 64), (2, 1, 64), (3, 1, 64), (4, 1, 64), (5, 7, 64), (6, 7, 3)],
)
def test_random_writes_keep_every_answer_equal_to_evaluation(seed, every, max_pending,
                                                             monkeypatch):
    from node.hub import maintained_answers

    monkeypatch.setattr(maintained_answers, "MAX_PENDING", max_pending)
    rng, claims = random.Random(seed), random.Random(-seed)
    index, _, checker = _maintaining(_queries())
    checker.check()  # built before the writes
    written: dict[str, tuple[str, dict]] = {}
    most: dict[str, int] = {}
    for number in range(150 if every == 1 else 350):
        _random_write(rng, index, written, claims)
        if number % every == 0:
            checker.check()
        for slug, count in index.maintained.rows_held().items():
            most[slug] = max(most.get(slug, 0), count)
    # the data reached every example, and the answers were (mostly) served maintained
    assert all(count >= 2 for count in most.values()), most
    assert checker.served > 0.8 * (checker.served + checker.evaluated_instead)
    assert index.maintained.updates > 300


def test_counts_tied_across_the_limit_cut():
    """Six practices with two disagreements each and one with three: the cut at 4 falls
    inside the tie and is decided by ?practiceKey as in the evaluated answer."""
    index, _, checker = _maintaining(
        [_with_limit(query, 4) for query in maintained_examples()],
        ("disagreements-by-practice", "contributions-by-municipality"))
    for number in range(7):
        host = MEMBERS[number % 3]
        index.add_contribution(actor(host), practice(host, f"p{number}", name="Gleich",
                                                     ags=f"{5_000_000 + number:08d}"))
        for voter in range(2 + (number == 5)):
            other = f"voter{voter}.example"
            index.add_contribution(actor(other), stance(
                other, f"s{number}-{voter}", about=f"https://{host}/practices/p{number}",
                position="disagree"))
            checker.check()
    answer = checker.check()[0]
    assert [row["disagreements"]["value"] for row in answer.rows] == ["3", "2", "2", "2"]
    assert checker.evaluated_instead == 0


# Every kind of write reaches every example: base state, then one write of the kind that
# changes the example's answer.
A, B = MEMBERS[0], MEMBERS[1]
P = {**practice(A, "p", name="E-Akte Kreis"), "municipalityKey": DISTRICT_KEY + "05754"}
SA = stance(A, "sa", about=SECTION + "a", position="disagree", reason="nein")
E = {**_random_experience(random.Random(0), A, "e"), "about": SECTION + "a", "name": "Erfahrung"}
SB = stance(B, "sb", about=P["id"], position="disagree")
GROUPS = {
    "practice": (("practices-by-topic", "e-file-in-operation",
                  "e-file-by-districts-in-operation", "contributions-by-municipality"),
                 {"add": (A, {**P, "id": P["id"] + "2"}),
                  "update": (A, {**P, "name": "Anders", "municipalityKey": DISTRICT_KEY + "05755"}),
                  "remove": P["id"], "replace_member": (A, [E, SA])}),
    "experience": (("experiences-disagreeing-with-section",),
                   {"add": (A, {**E, "id": E["id"] + "2"}), "update": (A, {**E, "name": "Neu"}),
                    "remove": E["id"], "replace_member": (A, [P, SA])}),
    "stance": (("disagreements-by-practice",),
               {"add": (B, {**SB, "id": SB["id"] + "2"}), "update": (B, {**SB, "position": "agree"}),
                "remove": SB["id"], "replace_member": (B, [])}),
}


@pytest.mark.parametrize("kind", ["add", "update", "remove", "replace_member"])
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_kind_of_write_reaches_every_example(group, kind):
    runner = CountingRunner()
    index = make_index(runner)
    index.add_contribution(actor(A), P)
    index.add_contribution(actor(A), SA)
    index.add_contribution(actor(A), E)
    index.add_contribution(actor(B), SB)
    slugs, writes = GROUPS[group]
    queries = [query for query in maintained_examples() if query.slug in slugs]
    index.maintain(queries)
    checker = Checker(index, runner, queries)
    before = checker.check()
    write = writes[kind]
    if kind == "remove":
        index.remove_contribution(write)
    elif kind == "replace_member":
        index.replace_member(actor(write[0]), write[1])
    else:
        index.add_contribution(actor(write[0]), write[1])
    after = checker.check()
    for query, old, new in zip(queries, before, after, strict=True):
        assert old.rows != new.rows, query.slug
    assert checker.evaluated_instead == 0


def test_a_rebuild_drops_the_rows_and_the_next_query_builds_them_again():
    index, runner, _ = _maintaining()
    index.add_contribution(actor(A), P)
    query = example_by_slug("practices-by-topic").sparql
    first = index.query(query, timeout=5, max_rows=500, options=QUERY_OPTIONS)
    assert [row["name"]["value"] for row in first.rows] == ["E-Akte Kreis"]
    index.rebuild([(actor(B), practice(B, "q", name="Neu"))])
    assert index.maintained.rows_held()["practices-by-topic"] == 0
    again = index.query(query, timeout=5, max_rows=500, options=QUERY_OPTIONS)
    assert [row["name"]["value"] for row in again.rows] == ["Neu"]
    assert runner.evaluated == 0


def test_doubtful_orders_and_other_options_are_evaluated():
    """The same text in two languages, and a blank-node practice: Oxigraph's order is its
    own, so the query is evaluated; a query with other options is not the example."""
    index, runner, _ = _maintaining()
    query = example_by_slug("practices-by-topic").sparql
    german = practice(A, "de", name="x")
    del german["name"]
    german["nameMap"] = {"de": "Akte"}
    english = {**german, "id": practice(B, "en", name="x")["id"], "attributedTo": actor(B),
               "nameMap": {"en": "Akte"}}
    index.add_contribution(actor(A), german)
    index.query(query, timeout=5, max_rows=500, options=QUERY_OPTIONS)
    assert runner.evaluated == 0
    index.add_contribution(actor(B), english)
    index.query(query, timeout=5, max_rows=500, options=QUERY_OPTIONS)
    assert runner.evaluated == 1
    index.remove_contribution(english["id"])
    index.query(query, timeout=5, max_rows=500, options=QUERY_OPTIONS)
    assert runner.evaluated == 1
    index.query(query, timeout=5, max_rows=500)  # without the endpoint's prefixes
    assert runner.evaluated == 2


def test_a_statement_about_another_document_reaches_the_rows_it_completes():
    """A document may state something about another one (a nested object with an id):
    adding it makes a plain note a disagreeing stance in the union graph. The write's
    quads name only the note; its ``pn:about`` target is found in the store."""
    index, _, checker = _maintaining(slugs=("disagreements-by-practice",))
    index.add_contribution(actor(A), P)
    note = {**SB, "type": ["Note"]}
    index.add_contribution(actor(B), note)
    assert checker.check()[0].rows == ()
    other = practice(MEMBERS[2], "y", name="Y")
    other["attachment"] = [{"id": note["id"], "type": "Stance"}]
    index.add_contribution(actor(MEMBERS[2]), other)
    assert [row["disagreements"]["value"] for row in checker.check()[0].rows] == ["1"]
    assert checker.evaluated_instead == 0


def test_a_practice_in_several_graphs_and_stances_alike_give_one_row_each():
    """The union of the graphs is a bag (a triple once per graph holding it): the examples
    over it list a practice in three members' graphs once, and an experience with two
    disagreeing stances of the same reason once; maintained as evaluated."""
    index, _, checker = _maintaining(slugs=("e-file-in-operation",
                                            "experiences-disagreeing-with-section"))
    checker.check()
    shared = {**P, "attributedTo": [actor(host) for host in MEMBERS[:3]]}
    for host in MEMBERS[:3]:
        index.replace_member(actor(host), [shared])
    for slug in ("s1", "s2"):
        index.add_contribution(actor(A), stance(A, slug, about=SECTION + "a", position="disagree"))
    experience = _random_experience(random.Random(0), A, "e0")
    index.add_contribution(actor(A), {**experience, "about": SECTION + "a"})
    in_operation, experiences = checker.check()
    assert [row["practice"]["value"] for row in in_operation.rows] == [P["id"]]
    assert [row["experience"]["value"] for row in experiences.rows] == [experience["id"]]
    assert checker.evaluated_instead == 0


def test_the_warmer_builds_maintained_answers_without_waiting_for_quiet():
    index, runner, _ = _maintaining()
    index.add_contribution(actor(A), P)
    now = [0.0]
    warmer = AnswerWarmer(quiet_seconds=30, monotonic=lambda: now[0])
    assert warmer.due(index)  # unbuilt: at once, not after 30 s of quiet
    assert warmer.warm(index) == len(maintained_examples())
    assert not index.maintained.unbuilt() and runner.evaluated == 0
    assert not warmer.due(index)
    index.add_contribution(actor(B), SB)  # kept up to date: nothing to warm
    assert not warmer.due(index)
    index.rebuild([(actor(A), P)])
    assert warmer.due(index)
    warmer.warm(index)
    assert not warmer.due(index) and runner.evaluated == 0


def test_a_failed_update_drops_the_answer_and_the_query_is_evaluated(monkeypatch):
    from node.hub import maintained_answers

    index, _, checker = _maintaining(slugs=("practices-by-topic",))
    index.add_contribution(actor(A), P)
    checker.check()
    real = maintained_answers._rows

    def failing(store, text, options):
        raise OSError("disk gone")

    monkeypatch.setattr(maintained_answers, "_rows", failing)
    index.add_contribution(actor(B), practice(B, "q", name="Neu"))  # the write itself succeeds
    answer = checker.check()[0]  # its partition fails: dropped, and evaluated instead
    assert [row["name"]["value"] for row in answer.rows] == ["E-Akte Kreis", "Neu"]
    assert checker.evaluated_instead == 1 and index.maintained.unbuilt()
    monkeypatch.setattr(maintained_answers, "_rows", real)
    answer = checker.check()[0]  # built again from the store
    assert [row["name"]["value"] for row in answer.rows] == ["E-Akte Kreis", "Neu"]
    assert checker.evaluated_instead == 1


def test_a_blank_node_practice_is_evaluated_until_it_is_gone():
    """A practice without an id (a nested object) is a blank node: SPARQL does not order
    blank nodes among themselves, so while one is among the rows the examples that sort
    on ?practice are evaluated; for a union-graph example it cannot be named in VALUES,
    so the write drops the rows (built again by the next query)."""
    index, _, checker = _maintaining(slugs=("practices-by-topic", "e-file-in-operation"))
    index.add_contribution(actor(A), P)
    checker.check()
    assert checker.evaluated_instead == 0
    holder = practice(B, "holder", name="Hülle", topics=("strategie",))
    holder["attachment"] = [{"type": "Practice", "name": "Innen",
                             "topic": "https://w3id.org/praxisnetz/topics#e-akte",
                             "status": "in-operation"}]
    index.add_contribution(actor(B), holder)
    names = [row["name"]["value"] for row in checker.check()[0].rows]
    assert names == ["E-Akte Kreis", "Innen"]
    assert checker.evaluated_instead == 2
    index.remove_contribution(holder["id"])
    checker.check()
    assert checker.evaluated_instead == 2  # gone: served from the rows again
