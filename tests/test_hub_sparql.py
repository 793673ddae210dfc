"""The read-only SPARQL endpoint: refusals, limits, result formats, example queries."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import pyoxigraph as ox
import pytest
from hub_support import actor, make_index, practice, stance

from node.hub.query_runner import (
    ForkRunner,
    QueryError,
    QueryErrorKind,
    QueryLimits,
    ThreadRunner,
    check_read_only,
)
from node.hub.sparql import (
    ResultFormat,
    example_by_slug,
    example_queries,
    execute_sparql,
    negotiate,
)

GUETERSLOH, DUEREN, COCHEM = "guetersloh.example", "dueren.example", "cochem-zell.example"
PRACTICE_OF = "https://guetersloh.example/practices/"


@pytest.fixture(scope="module")
def index():
    hub = make_index(ThreadRunner(max_concurrent=4))
    hub.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "e-akte-bauamt", name="E-Akte im Bauamt"))
    hub.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "e-akte-pilot", name="E-Akte Pilot", status="piloting"))
    hub.add_contribution(actor(DUEREN), practice(DUEREN, "portal", name="Bürgerportal", topics=("buergerportal-online-dienste",), ags="05358008"))
    hub.add_contribution(actor(DUEREN), stance(DUEREN, "s1", about=PRACTICE_OF + "e-akte-bauamt", position="disagree", reason="Zu teuer"))
    hub.add_contribution(actor(COCHEM), stance(COCHEM, "s2", about=PRACTICE_OF + "e-akte-bauamt", position="disagree"))
    hub.add_contribution(actor(COCHEM), stance(COCHEM, "s3", about=PRACTICE_OF + "e-akte-pilot", position="agree"))
    return hub


TEST_LIMITS = QueryLimits(timeout_s=5, max_rows=1000)


def run(index, query, fmt=ResultFormat.JSON):
    response = execute_sparql(index, query, limits=TEST_LIMITS, result_format=fmt)
    return json.loads(response.body) if fmt is ResultFormat.JSON else response


def values(result, name):
    return [row[name]["value"] for row in result["results"]["bindings"]]


def test_example_practices_by_topic(index):
    result = run(index, example_by_slug("practices-by-topic").sparql)
    assert values(result, "name") == ["E-Akte Pilot", "E-Akte im Bauamt"]  # code point order
    assert set(values(result, "member")) == {actor(GUETERSLOH)}


def test_example_e_file_in_operation(index):
    result = run(index, example_by_slug("e-file-in-operation").sparql)
    assert values(result, "practice") == [PRACTICE_OF + "e-akte-bauamt"]


def test_example_disagreements_by_practice(index):
    result = run(index, example_by_slug("disagreements-by-practice").sparql)
    rows = [(r["practice"]["value"], r["disagreements"]["value"]) for r in result["results"]["bindings"]]
    assert rows == [(PRACTICE_OF + "e-akte-bauamt", "2")]


def test_example_contributions_by_municipality(index):
    result = run(index, example_by_slug("contributions-by-municipality").sparql)
    rows = {r["municipalityKey"]["value"].rsplit("/", 1)[1]: r["contributions"]["value"] for r in result["results"]["bindings"]}
    assert rows == {"05754008": "2", "05358008": "1"}


DISTRICT_KEY = "http://dcat-ap.de/def/politicalGeocoding/districtKey/"
HUB_SECTION = "https://hub.example/handbook/sections/"


def experience(host, slug, *, about):
    document = stance(host, slug, about=about, position="agree")
    for field in ("position", "reason"):
        del document[field]
    return {**document, "id": f"https://{host}/experiences/{slug}", "type": ["Article", "Experience"], "name": slug}


@pytest.fixture(scope="module")
def crafted_index():
    """Districts and municipalities, in operation or not; stances and experiences about sections."""
    hub = make_index(ThreadRunner(max_concurrent=2))
    gt_kreis, bauamt = "kreis-guetersloh.example", "bauamt.example"
    for slug, status in (("kreis-e-akte", "in-operation"), ("kreis-pilot", "piloting")):
        document = practice(gt_kreis, slug, name=slug, status=status)
        hub.add_contribution(actor(gt_kreis), {**document, "municipalityKey": DISTRICT_KEY + "05754"})
    hub.add_contribution(actor(gt_kreis), practice(gt_kreis, "kreis-portal", name="Portal", topics=("buergerportal-online-dienste",)) | {"municipalityKey": DISTRICT_KEY + "05754"})
    hub.add_contribution(actor(bauamt), practice(bauamt, "stadt-e-akte", name="Stadt", ags="05315000"))
    # Gütersloh disagrees with section "scan" and reports on it: the one expected row.
    hub.add_contribution(actor(gt_kreis), stance(gt_kreis, "s-scan", about=HUB_SECTION + "scan", position="disagree", reason="Scannen zuerst"))
    hub.add_contribution(actor(gt_kreis), experience(gt_kreis, "e-scan", about=HUB_SECTION + "scan"))
    # the Bauamt reports on "scan" but agrees; disagrees with "archiv" but reports on a practice
    hub.add_contribution(actor(bauamt), stance(bauamt, "s-scan", about=HUB_SECTION + "scan", position="agree"))
    hub.add_contribution(actor(bauamt), experience(bauamt, "e-scan", about=HUB_SECTION + "scan"))
    hub.add_contribution(actor(bauamt), stance(bauamt, "s-archiv", about=HUB_SECTION + "archiv", position="disagree"))
    hub.add_contribution(actor(bauamt), experience(bauamt, "e-practice", about="https://bauamt.example/practices/stadt-e-akte"))
    hub.add_contribution(actor(bauamt), stance(bauamt, "s-practice", about="https://bauamt.example/practices/stadt-e-akte", position="disagree"))
    return hub


def test_example_e_file_by_districts_in_operation(crafted_index):
    result = run(crafted_index, example_by_slug("e-file-by-districts-in-operation").sparql)
    rows = [(r["practice"]["value"], r["districtKey"]["value"]) for r in result["results"]["bindings"]]
    # not the piloting one, not the portal, not the city whose AGS ends in 000
    assert rows == [("https://kreis-guetersloh.example/practices/kreis-e-akte", DISTRICT_KEY + "05754")]


def test_example_experiences_disagreeing_with_section(crafted_index):
    result = run(crafted_index, example_by_slug("experiences-disagreeing-with-section").sparql)
    rows = [(r["experience"]["value"], r["section"]["value"], r["reason"]["value"]) for r in result["results"]["bindings"]]
    assert rows == [("https://kreis-guetersloh.example/experiences/e-scan", HUB_SECTION + "scan", "Scannen zuerst")]


def test_named_examples_have_both_titles():
    districts = example_by_slug("e-file-by-districts-in-operation")
    disagreeing = example_by_slug("experiences-disagreeing-with-section")
    assert districts.title_en == "Practices on e-files by districts that are in operation"
    assert disagreeing.title_en == "Experiences that disagree with a section"
    assert "Kreis" in districts.title_de and "widersprechen" in disagreeing.title_de


def test_every_example_runs_and_is_described(index):
    for example in example_queries():
        assert example.title_de and example.title_en and example.description_de
        run(index, example.sparql)


def test_ask_and_result_formats(index):
    assert run(index, "ASK { ?s a <https://w3id.org/praxisnetz#Stance> }") == {"head": {}, "boolean": True}
    query = "SELECT ?name WHERE { <https://dueren.example/practices/portal> <https://www.w3.org/ns/activitystreams#name> ?name }"
    csv_body = run(index, query, ResultFormat.CSV).body.decode()
    assert csv_body == "name\r\nBürgerportal\r\n"
    tsv_body = run(index, query, ResultFormat.TSV).body.decode()
    assert tsv_body == '?name\n"Bürgerportal"\n'
    xml_body = run(index, query, ResultFormat.XML).body.decode()
    assert "<literal>Bürgerportal</literal>" in xml_body


def test_common_prefixes_are_predeclared(index):
    result = run(index, "SELECT ?s WHERE { ?s a pn:Stance ; pn:position pn:agree }")
    assert values(result, "s") == ["https://cochem-zell.example/stances/s3"]


def test_construct_gives_triples(index):
    query = "CONSTRUCT { ?s <urn:x:name> ?n } WHERE { ?s a <https://w3id.org/praxisnetz#Practice> ; <https://www.w3.org/ns/activitystreams#name> ?n }"
    response = run(index, query, ResultFormat.TURTLE)
    assert response.media_type == "text/turtle"
    parsed = list(ox.parse(response.body, format=ox.RdfFormat.TURTLE))
    assert len(parsed) == 3
    # a table format asked for a graph result falls back to N-Triples
    assert run(index, query, ResultFormat.CSV).media_type == "application/n-triples"


@pytest.mark.parametrize(
    "update",
    [
        "INSERT DATA { <urn:a> <urn:b> <urn:c> }",
        "PREFIX ex: <http://example.org/#>\n# a comment\nDELETE WHERE { ?s ?p ?o }",
        "load <http://example.org/data.ttl>",
        "CLEAR ALL",
        "WITH <urn:g> DELETE { ?s ?p ?o } WHERE { ?s ?p ?o }",
    ],
)
def test_updates_are_refused_and_change_nothing(index, update):
    size = len(index.store)
    with pytest.raises(QueryError) as caught:
        run(index, update)
    assert caught.value.kind is QueryErrorKind.UPDATE_REFUSED
    assert "read-only" in caught.value.message
    assert len(index.store) == size


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * WHERE { SERVICE <http://169.254.169.254/latest> { ?s ?p ?o } }",
        "SELECT * WHERE { service silent <http://127.0.0.1:5432/> { ?s ?p ?o } }",
        "SELECT * WHERE { ?a ?b ?c }SERVICE<http://10.0.0.1/>{?s ?p ?o}",
        "SELECT * WHERE { ?a ?b ?c . \\u0053ERVICE <http://10.0.0.1/> { ?s ?p ?o } }",
        "SELECT * WHERE { ?a ?b ?c FILTER(?a<?c)SERVICE<http://10.0.0.1/>{?s ?p ?o} }",
        "SELECT * WHERE { ?a ?b \"\"\"x\"\"\"\" SERVICE <http://10.0.0.1/> { ?s ?p ?o } }",
    ],
)
def test_service_is_refused_before_any_request(index, query):
    with pytest.raises(QueryError) as caught:
        run(index, query)
    assert caught.value.kind is QueryErrorKind.SERVICE_REFUSED


def test_names_containing_service_are_not_refused():
    check_read_only("PREFIX cpsv: <http://purl.org/vocab/cpsv#> SELECT ?service WHERE { ?service a cpsv:PublicService ; <https://schema.org/Service> ?x }")


def test_syntax_errors_are_typed(index):
    with pytest.raises(QueryError) as caught:
        run(index, "SELECT ?x WHERE { ?x ")
    assert caught.value.kind is QueryErrorKind.SYNTAX
    assert caught.value.message.startswith("the query is not valid SPARQL")
    with pytest.raises(QueryError) as empty:
        run(index, "   ")
    assert empty.value.kind is QueryErrorKind.SYNTAX
    with pytest.raises(QueryError) as huge:
        run(index, "ASK { ?s ?p ?o }" + " " * 200_000)
    assert huge.value.kind is QueryErrorKind.SYNTAX and "longer than" in huge.value.message


def crowded_index(runner, triples=2000, path=None):
    hub = make_index(runner, path=path)
    hub.store.bulk_extend(
        ox.Quad(ox.NamedNode(f"urn:s{i}"), ox.NamedNode("urn:p"), ox.Literal(str(i)), ox.NamedNode("urn:g"))
        for i in range(triples)
    )
    return hub


# 2,000³ = 8·10⁹ solutions to count: many minutes of work if nothing stops it.
RUNAWAY = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"


def test_runaway_query_is_killed_at_the_time_limit():
    hub = crowded_index(ForkRunner())
    started = time.monotonic()
    with pytest.raises(QueryError) as caught:
        hub.query(RUNAWAY, timeout=0.5, max_rows=100)
    elapsed = time.monotonic() - started
    assert caught.value.kind is QueryErrorKind.TIMEOUT
    assert "0.5 s" in caught.value.message
    assert 0.5 <= elapsed < 2.0
    assert multiprocessing.active_children() == []  # the work really stopped
    # and the index still answers afterwards
    outcome = hub.query("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }", timeout=5, max_rows=10)
    assert outcome.rows[0]["n"]["value"] == "2000"


def test_stopping_the_queries_ends_a_running_one_at_once_and_refuses_new_ones():
    """Shutdown must not wait for a query's time limit (a warm-up allows 60 s; `make demo`
    then hung on Ctrl-C)."""
    hub = crowded_index(ForkRunner())
    errors: list[QueryError] = []

    def ask() -> None:
        try:
            hub.query(RUNAWAY, timeout=30, max_rows=100)
        except QueryError as exc:
            errors.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    time.sleep(0.5)  # the child is evaluating
    started = time.monotonic()
    hub.stop_queries()
    asker.join(timeout=10)
    assert not asker.is_alive() and time.monotonic() - started < 5
    assert len(errors) == 1 and errors[0].kind is not QueryErrorKind.TIMEOUT
    assert multiprocessing.active_children() == []
    with pytest.raises(QueryError) as refused:
        hub.query("SELECT * WHERE { ?s ?p ?o } LIMIT 1", timeout=5, max_rows=10, reuse=False)
    assert refused.value.kind is QueryErrorKind.BUSY and "stopping" in refused.value.message


def test_an_on_disk_index_kills_runaways_by_default(tmp_path):
    hub = crowded_index(None, path=tmp_path / "index")
    with pytest.raises(QueryError) as caught:
        hub.query(RUNAWAY, timeout=0.3, max_rows=10)
    assert caught.value.kind is QueryErrorKind.TIMEOUT
    assert multiprocessing.active_children() == []


def test_fork_runner_sees_writes_made_before_the_query():
    hub = crowded_index(ForkRunner(), triples=10)
    hub.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "neu", name="Neu"))
    outcome = hub.query("ASK { ?s <https://www.w3.org/ns/activitystreams#name> \"Neu\" }", timeout=5, max_rows=10)
    assert outcome.value is True


def test_no_fork_while_the_index_is_being_rebuilt():
    hub = make_index(ForkRunner())
    release = threading.Event()

    def slow_contributions():
        yield actor(GUETERSLOH), practice(GUETERSLOH, "a", name="A")
        release.wait(5)  # the rebuild holds the index's write lock meanwhile

    rebuild = threading.Thread(target=hub.rebuild, args=(slow_contributions(),))
    rebuild.start()
    try:
        time.sleep(0.1)
        with pytest.raises(QueryError) as caught:
            hub.query("ASK { ?s ?p ?o }", timeout=0.3, max_rows=1)
        assert caught.value.kind is QueryErrorKind.BUSY
    finally:
        release.set()
        rebuild.join()
    assert hub.query("ASK { ?s ?p ?o }", timeout=5, max_rows=1).value is True


def test_row_limit_stops_a_huge_result_with_a_clear_error():
    hub = crowded_index(ThreadRunner())
    started = time.monotonic()
    with pytest.raises(QueryError) as caught:
        hub.query("SELECT * WHERE { ?a ?b ?c . ?d ?e ?f }", timeout=5, max_rows=1000)
    assert caught.value.kind is QueryErrorKind.TOO_MANY_ROWS
    assert "more than 1000" in caught.value.message
    assert time.monotonic() - started < 1.0


def test_thread_runner_answers_in_time_and_limits_concurrency():
    runner = ThreadRunner(max_concurrent=1)
    hub = crowded_index(runner, triples=4000)  # 1.6·10⁷ pairs: a second or two of work
    started = time.monotonic()
    with pytest.raises(QueryError) as caught:
        hub.query("SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f }", timeout=0.2, max_rows=10)
    assert caught.value.kind is QueryErrorKind.TIMEOUT
    assert time.monotonic() - started < 0.6
    # the runaway goes on at the lowest priority, on idle CPU only
    assert 19 in thread_niceness()
    # the stuck evaluation still holds the only slot: new queries are refused, not queued
    with pytest.raises(QueryError) as busy:
        hub.query("ASK { ?s ?p ?o }", timeout=1, max_rows=10)
    assert busy.value.kind is QueryErrorKind.BUSY


def thread_niceness() -> list[int]:
    values = []
    for stat in Path("/proc/self/task").glob("*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        values.append(int(fields[16]))  # field 19 of proc(5), counted after the command name
    return values


def test_a_query_that_eats_memory_dies_alone():
    hub = crowded_index(ForkRunner(memory_budget=64 << 20))
    started = time.monotonic()
    with pytest.raises(QueryError) as caught:
        hub.query("SELECT ?a ?d WHERE { ?a ?b ?c . ?d ?e ?f } ORDER BY ?c ?f", timeout=20, max_rows=10)
    assert caught.value.kind is QueryErrorKind.FAILED
    assert "memory" in caught.value.message
    assert time.monotonic() - started < 15
    assert hub.query("ASK { ?s ?p ?o }", timeout=5, max_rows=1).value is True


def test_negotiate_result_format():
    assert negotiate("text/csv, application/json") is ResultFormat.CSV
    assert negotiate("application/sparql-results+xml;q=0.9") is ResultFormat.XML
    assert negotiate("text/html") is ResultFormat.JSON
    assert negotiate(None, default=ResultFormat.TURTLE) is ResultFormat.TURTLE


def test_fork_runner_on_an_on_disk_index(tmp_path):
    hub = make_index(ForkRunner(), path=tmp_path / "index")
    hub.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "disk", name="Auf Platte"))
    for _ in range(3):  # the parent's store stays usable after children come and go
        outcome = hub.query("SELECT ?n WHERE { ?s <https://www.w3.org/ns/activitystreams#name> ?n }", timeout=5, max_rows=10)
        assert [row["n"]["value"] for row in outcome.rows] == ["Auf Platte"]
    hub.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "disk2", name="Zweite"))
    assert hub.count() == 2


def test_a_forked_child_stuck_before_it_can_read_is_replaced(tmp_path, monkeypatch):
    # A child that copied a RocksDB lock held by one of our background threads at the
    # moment of the fork never gets it: simulated by a first child that never reports.
    import node.hub.query_runner as query_runner

    original = query_runner._child_main
    marker = tmp_path / "first-child-started"

    def first_child_hangs(*args):
        if not marker.exists():
            marker.touch()
            time.sleep(60)
        original(*args)

    monkeypatch.setattr(query_runner, "_child_main", first_child_hangs)
    runner = ForkRunner()
    hub = make_index(runner, path=tmp_path / "index")
    hub.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "a", name="A"))
    started = time.monotonic()
    outcome = hub.query("ASK { ?s ?p ?o }", timeout=10, max_rows=1, reuse=False)
    assert outcome.value is True and marker.exists()
    assert runner.restarts >= 1  # more if a child is slow to start on a busy machine
    assert query_runner.READY_WAIT_S <= time.monotonic() - started < 8
    for _ in range(50):  # the answering child exits by itself, the stuck one was killed
        if not multiprocessing.active_children():
            break
        time.sleep(0.1)
    assert multiprocessing.active_children() == []
