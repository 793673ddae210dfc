"""The hub's RDF index: named graphs per member, updates, removal, rebuild, rdflib view."""

from __future__ import annotations

import pyoxigraph as ox
import pytest
from hub_support import actor, bundled_contexts, make_index, practice, stance

from node.hub.index import HubIndex, IndexInputError
from node.hub.query_runner import ThreadRunner
from vocab.rdf import to_nquads

GUETERSLOH, DUEREN = "guetersloh.example", "dueren.example"


def canonical(store: ox.Store) -> set[str]:
    dataset = ox.Dataset(store)
    dataset.canonicalize(ox.CanonicalizationAlgorithm.UNSTABLE)
    return {str(quad) for quad in dataset}


def graphs_of(index: HubIndex, uri: str) -> set[str]:
    return {quad.graph_name.value for quad in index.store.quads_for_pattern(ox.NamedNode(uri), None, None, None)}


def test_each_member_gets_its_own_named_graph():
    index = make_index(ThreadRunner())
    first = practice(GUETERSLOH, "e-akte", name="E-Akte im Bauamt")
    second = practice(DUEREN, "portal", name="Bürgerportal", ags="05358008")
    index.add_contribution(actor(GUETERSLOH), first)
    index.add_contribution(actor(DUEREN), second)

    assert make_index(ThreadRunner()).is_empty() and not index.is_empty()
    assert index.members() == [actor(DUEREN), actor(GUETERSLOH)]
    assert graphs_of(index, first["id"]) == {actor(GUETERSLOH)}
    assert graphs_of(index, second["id"]) == {actor(DUEREN)}
    assert index.count() == 2
    # the proof-free document lands completely: the steps are blank nodes in the same graph
    steps = list(index.store.quads_for_pattern(None, ox.NamedNode("https://schema.org/text"), None, ox.NamedNode(actor(DUEREN))))
    assert len(steps) == 2


def test_fast_path_gives_the_same_rdf_as_the_pyld_path():
    document = practice(GUETERSLOH, "e-akte", name="E-Akte", content="<p>Text</p>")
    fast = make_index(ThreadRunner())
    fast.add_contribution(actor(GUETERSLOH), document)
    slow = HubIndex(None, contexts={}, fallback=lambda doc: to_nquads(doc, doc["id"]), runner=ThreadRunner())
    slow.add_contribution(actor(GUETERSLOH), document)
    assert canonical(fast.store) == canonical(slow.store)
    assert len(fast.store) > 15


def test_update_replaces_and_remove_leaves_nothing_behind():
    index = make_index(ThreadRunner())
    index.add_contribution(actor(DUEREN), practice(DUEREN, "other", name="Andere"))
    before = len(index.store)
    document = practice(GUETERSLOH, "e-akte", name="E-Akte", steps=("a", "b", "c"))
    index.add_contribution(actor(GUETERSLOH), document)
    updated = {**document, "name": "E-Akte (neu)", "step": document["step"][:1]}
    index.add_contribution(actor(GUETERSLOH), updated)

    names = [q.object.value for q in index.store.quads_for_pattern(ox.NamedNode(document["id"]), ox.NamedNode("https://www.w3.org/ns/activitystreams#name"), None, None)]
    assert names == ["E-Akte (neu)"]
    assert index.count() == 2

    assert index.remove_contribution(document["id"]) is True
    assert len(index.store) == before  # no orphaned step blank nodes
    assert index.remove_contribution(document["id"]) is False


def test_rebuild_equals_incremental():
    first = practice(GUETERSLOH, "e-akte", name="E-Akte")
    second = practice(GUETERSLOH, "scan", name="Scannen", topics=("e-akte", "prozessmanagement"))
    third = practice(DUEREN, "portal", name="Portal", ags="05358008")
    vote = stance(DUEREN, "v1", about=first["id"], position="disagree", reason="Bei uns anders")
    incremental = make_index(ThreadRunner())
    for member, document in [(GUETERSLOH, first), (GUETERSLOH, second), (DUEREN, third), (DUEREN, vote)]:
        incremental.add_contribution(actor(member), document)
    second_v2 = {**second, "summary": "Neu gefasst"}
    incremental.add_contribution(actor(GUETERSLOH), second_v2)
    incremental.remove_contribution(third["id"])

    rebuilt = make_index(ThreadRunner())
    rebuilt.add_contribution(actor(DUEREN), practice(DUEREN, "stale", name="Alt"))  # wiped by rebuild
    report = rebuilt.rebuild([(actor(GUETERSLOH), first), (actor(GUETERSLOH), second_v2), (actor(DUEREN), vote)])

    assert report.indexed == 3 and report.skipped == ()
    assert canonical(rebuilt.store) == canonical(incremental.store)
    assert rebuilt.count() == incremental.count() == 3


def test_replace_member_keeps_other_members():
    index = make_index(ThreadRunner())
    index.add_contribution(actor(DUEREN), practice(DUEREN, "portal", name="Portal"))
    index.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "old", name="Alt"))
    count = index.replace_member(actor(GUETERSLOH), [practice(GUETERSLOH, "new", name="Neu")])
    assert count == 1
    assert graphs_of(index, f"https://{GUETERSLOH}/practices/old") == set()
    assert graphs_of(index, f"https://{GUETERSLOH}/practices/new") == {actor(GUETERSLOH)}
    assert graphs_of(index, f"https://{DUEREN}/practices/portal") == {actor(DUEREN)}


def test_rebuild_reports_bad_documents_and_keeps_the_rest():
    index = make_index(ThreadRunner())
    good = practice(GUETERSLOH, "ok", name="Gut")
    foreign = practice(DUEREN, "spoof", name="Fremd")  # claims Düren, offered as Gütersloh's
    report = index.rebuild([(actor(GUETERSLOH), good), (actor(GUETERSLOH), foreign)])
    assert report.indexed == 1
    assert [(s.uri, s.field) for s in report.skipped] == [(foreign["id"], "attributedTo")]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attributedTo": actor(DUEREN)}, "attributedTo"),
        ({"id": "not a url"}, "id"),
        ({"@context": ["https://evil.example/context.jsonld"]}, "@context"),
        ({"@context": None}, "@context"),
        ({"@context": [5]}, "@context"),
    ],
)
def test_bad_documents_are_refused_naming_the_field(change, field):
    index = make_index(ThreadRunner())
    document = {**practice(GUETERSLOH, "x", name="X"), **change}
    with pytest.raises(IndexInputError) as caught:
        index.add_contribution(actor(GUETERSLOH), document)
    assert caught.value.field == field
    assert len(index.store) == 0


def test_proof_is_not_indexed_but_the_content_is():
    index = make_index(ThreadRunner())
    document = practice(GUETERSLOH, "signed", name="Signiert")
    document["proof"] = {"type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022", "proofValue": "zabc"}
    index.add_contribution(actor(GUETERSLOH), document)
    assert index.members() == [actor(GUETERSLOH)]  # no blank-node proof graph
    assert not list(index.store.quads_for_pattern(None, ox.NamedNode("https://w3id.org/security#proofValue"), None, None))


def test_rdflib_view_reads_the_same_store():
    index = make_index(ThreadRunner())
    index.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "e-akte", name="E-Akte im Bauamt"))
    dataset = index.rdflib_dataset()
    rows = list(dataset.query(
        "SELECT ?g ?name WHERE { GRAPH ?g { ?s <https://www.w3.org/ns/activitystreams#name> ?name } }"
    ))
    assert [(str(g), str(name)) for g, name in rows] == [(actor(GUETERSLOH), "E-Akte im Bauamt")]


def test_on_disk_index_survives_reopening(tmp_path):
    index = HubIndex(tmp_path / "index", contexts=bundled_contexts(), runner=ThreadRunner())
    index.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "e-akte", name="E-Akte"))
    index.flush()
    del index
    reopened = HubIndex(tmp_path / "index", contexts=bundled_contexts(), runner=ThreadRunner())
    assert reopened.count() == 1


def test_batched_rebuild_isolates_a_bad_document_and_duplicates():
    good = [practice(GUETERSLOH, f"p{i}", name=f"Praxis {i}") for i in range(5)]
    broken = {**practice(GUETERSLOH, "broken", name="Kaputt"), "step": [{"@id": 5}]}
    index = make_index(ThreadRunner())
    report = index.rebuild([(actor(GUETERSLOH), d) for d in [*good[:2], broken, *good[2:], good[0]]])
    assert report.indexed == 5
    assert [(s.uri, s.field) for s in report.skipped] == [(good[0]["id"], "id"), (broken["id"], "document")]
    single = make_index(ThreadRunner())
    for document in good:
        single.add_contribution(actor(GUETERSLOH), document)
    assert canonical(index.store) == canonical(single.store)


def test_written_blank_node_labels_do_not_merge_across_documents():
    first = practice(GUETERSLOH, "a", name="A", steps=())
    second = practice(GUETERSLOH, "b", name="B", steps=())
    first["step"] = [{"id": "_:b0", "type": "HowToStep", "position": 1, "text": "erster"}]
    second["step"] = [{"id": "_:b0", "type": "HowToStep", "position": 1, "text": "zweiter"}]
    step = ox.NamedNode("https://schema.org/step")
    incremental = make_index(ThreadRunner())
    incremental.add_contribution(actor(GUETERSLOH), first)
    incremental.add_contribution(actor(GUETERSLOH), second)
    assert len({q.object for q in incremental.store.quads_for_pattern(None, step, None, None)}) == 2
    index = make_index(ThreadRunner())
    index.rebuild([(actor(GUETERSLOH), first), (actor(GUETERSLOH), second)])
    nodes = {q.object for q in index.store.quads_for_pattern(None, step, None, None)}
    assert len(nodes) == 2
    index.remove_contribution(first["id"])
    texts = [q.object.value for q in index.store.quads_for_pattern(None, ox.NamedNode("https://schema.org/text"), None, None)]
    assert texts == ["zweiter"]


def test_replace_member_writes_nothing_when_a_document_is_bad():
    index = make_index(ThreadRunner())
    index.add_contribution(actor(GUETERSLOH), practice(GUETERSLOH, "old", name="Alt"))
    with pytest.raises(IndexInputError) as caught:
        index.replace_member(actor(GUETERSLOH), [practice(GUETERSLOH, "new", name="Neu"), practice(DUEREN, "x", name="X")])
    assert caught.value.field == "attributedTo"
    assert graphs_of(index, f"https://{GUETERSLOH}/practices/old") == {actor(GUETERSLOH)}


def test_the_watermark_stays_below_items_in_flight_and_never_moves_back() -> None:
    from datetime import UTC, datetime, timedelta

    from node.hub.aggregation import OVERLAP, next_watermark

    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert next_watermark(now, None, None) == now - OVERLAP
    hour_ago = now - timedelta(hours=1)
    assert next_watermark(now, hour_ago, None) < hour_ago  # strictly below: received_at > since
    assert next_watermark(now, now, None) == now - OVERLAP  # a fresh item holds nothing back
    earlier = now - timedelta(days=1)
    assert next_watermark(now, earlier - timedelta(days=1), earlier) == earlier  # not back


def test_a_failed_bulk_load_in_the_loader_thread_reaches_the_caller_and_releases_the_index(
    monkeypatch,
):
    from node.hub import index as index_module

    def broken(self, data):
        raise OSError("disk full")

    monkeypatch.setattr(index_module, "BULK_LOAD_DOCUMENTS", 2)  # a load while adding
    monkeypatch.setattr(index_module.IndexRebuild, "_bulk_load", broken)
    index = make_index(ThreadRunner())
    documents = [practice(GUETERSLOH, f"p{n}", name=f"P{n}") for n in range(5)]
    with pytest.raises(OSError, match="disk full"):
        index.rebuild([(actor(GUETERSLOH), document) for document in documents])
    assert index.generation % 2 == 0  # no write under way any more
    index.add_contribution(actor(GUETERSLOH), documents[0])  # the lock is free
    assert index.count() == 1
