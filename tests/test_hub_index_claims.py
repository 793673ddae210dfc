"""Removing or replacing a document removes exactly the quads it added to its graph
(node/hub/index.py with ``ForeignClaims`` in node/hub/jsonld_quads.py): also its
statements about other IRIs (nested objects with an id), but no quad that another
document of the same graph still asserts. After every write of random sequences the
store equals the union of what each indexed document converts to."""

from __future__ import annotations

import random

import pyoxigraph as ox
import pytest
from hub_support import actor, bundled_contexts, make_index, practice, stance

from node.hub.claims_record import ClaimsRecord
from node.hub.index import HubIndex
from node.hub.jsonld_quads import own_and_foreign
from node.hub.query_runner import ThreadRunner
from vocab.rdf import to_nquads

A, B = "a.example", "b.example"
NAME = ox.NamedNode("https://www.w3.org/ns/activitystreams#name")
OTHER = "https://elsewhere.example/things/1"


def canonical(store: ox.Store) -> set[str]:
    dataset = ox.Dataset(store)
    dataset.canonicalize(ox.CanonicalizationAlgorithm.UNSTABLE)
    return {str(quad) for quad in dataset}


def names_of(index: HubIndex, iri: str) -> set[tuple[str, str]]:
    return {(quad.object.value, quad.graph_name.value)
            for quad in index.store.quads_for_pattern(ox.NamedNode(iri), NAME, None, None)}


def with_attachment(document: dict, *items: dict) -> dict:
    return {**document, "attachment": list(items)}


def test_a_statement_about_another_iri_goes_with_an_update_and_a_removal():
    index = make_index(ThreadRunner())
    plain = practice(A, "p", name="P")
    index.add_contribution(actor(A), with_attachment(plain, {"id": OTHER, "name": "Anlage"}))
    assert names_of(index, OTHER) == {("Anlage", actor(A))}
    index.add_contribution(actor(A), plain)  # updated without it
    assert names_of(index, OTHER) == set()
    index.add_contribution(actor(A), with_attachment(plain, {"id": OTHER, "name": "Anlage 2"}))
    assert names_of(index, OTHER) == {("Anlage 2", actor(A))}
    assert index.remove_contribution(plain["id"]) is True
    assert len(index.store) == 0


def test_a_blank_node_under_another_iri_goes_too():
    index = make_index(ThreadRunner())
    document = with_attachment(practice(A, "p", name="P"),
                               {"id": OTHER, "tag": [{"type": "Hashtag", "name": "#akte"}]})
    index.add_contribution(actor(A), document)
    assert any(quad.object.value == "#akte" for quad in index.store.quads_for_pattern(None, NAME, None, None))
    index.remove_contribution(document["id"])
    assert len(index.store) == 0


def test_a_triple_two_documents_assert_in_one_graph_stays_until_both_are_gone():
    index = make_index(ThreadRunner())
    first = with_attachment(practice(A, "one", name="1"), {"id": OTHER, "name": "Geteilt"})
    second = with_attachment(practice(A, "two", name="2"), {"id": OTHER, "name": "Geteilt"})
    third = with_attachment(practice(B, "three", name="3"), {"id": OTHER, "name": "Geteilt"})
    for member, document in ((A, first), (A, second), (B, third)):
        index.add_contribution(actor(member), document)
    index.remove_contribution(first["id"])
    assert names_of(index, OTHER) == {("Geteilt", actor(A)), ("Geteilt", actor(B))}
    index.add_contribution(actor(A), {**second, "attachment": []})
    assert names_of(index, OTHER) == {("Geteilt", actor(B))}  # the other graph keeps its own


@pytest.mark.parametrize("remove_owner_first", [True, False])
def test_a_documents_own_statement_that_another_claims_stays_while_either_asserts_it(remove_owner_first):
    index = make_index(ThreadRunner())
    owner = practice(A, "owner", name="Eigen")
    claimer = with_attachment(stance(A, "s", about=owner["id"], position="agree"),
                              {"id": owner["id"], "name": "Eigen"})
    index.add_contribution(actor(A), owner)
    index.add_contribution(actor(A), claimer)
    first, second = (owner, claimer) if remove_owner_first else (claimer, owner)
    index.remove_contribution(first["id"])
    assert names_of(index, owner["id"]) == {("Eigen", actor(A))}
    index.remove_contribution(second["id"])
    assert names_of(index, owner["id"]) == set()
    assert len(index.store) == 0


def test_a_claim_made_before_its_subjects_document_arrives():
    index = make_index(ThreadRunner())
    owner = practice(A, "owner", name="Eigen")
    claimer = with_attachment(stance(A, "s", about=owner["id"], position="agree"),
                              {"id": owner["id"], "name": "Eigen"})
    index.add_contribution(actor(A), claimer)
    index.add_contribution(actor(A), owner)  # its removal of an older version keeps the claim
    index.add_contribution(actor(A), {**claimer, "attachment": []})
    assert names_of(index, owner["id"]) == {("Eigen", actor(A))}
    index.add_contribution(actor(A), {**owner, "name": "Neu"})
    assert names_of(index, owner["id"]) == {("Neu", actor(A))}


def test_the_check_that_picks_documents_to_convert_alone():
    converter = make_index(ThreadRunner())._converter
    plain = practice(A, "p", name="P")
    assert not converter.may_describe_others(plain)  # its steps are nested objects without an id
    assert converter.may_describe_others(with_attachment(plain, {"id": OTHER}))
    assert converter.may_describe_others({**plain, "step": [{"@id": "_:x", "text": "t"}]})
    assert converter.may_describe_others({**plain, "@included": []})
    # a context of its own may alias @id under any name
    assert converter.may_describe_others({**plain, "@context": [*plain["@context"], {"ident": "@id"}]})
    assert converter.may_describe_others({**plain, "@context": "https://unknown.example/context"})
    quads = converter.quads(with_attachment(plain, {"id": OTHER, "name": "x"}), ox.NamedNode(actor(A)))
    own, foreign = own_and_foreign(plain["id"], quads)
    assert [str(quad.subject) for quad in foreign] == [f"<{OTHER}>"]
    assert len(own) + 1 == len(quads)


def test_the_bundled_contexts_alias_id_only_as_id():
    """``may_describe_others`` looks for nested ``id`` and ``@id`` keys: no bundled context
    may name another alias of ``@id`` (nor of the other node keywords)."""
    def terms(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                yield key, inner
                yield from terms(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from terms(inner)

    keywords = {"@id", "@reverse", "@included", "@graph"}
    aliases: set[str] = set()
    for document in bundled_contexts().values():
        aliases |= {key for key, value in terms(document["@context"]) if not key.startswith("@")
                    and ((isinstance(value, str) and value in keywords)
                         or (isinstance(value, dict) and "@reverse" in value))}
    assert aliases == {"id"}


# --- random sequences against a model: the union of each indexed document's quads ---

TARGETS = (OTHER, "https://elsewhere.example/things/2")
HOSTS = (A, B, "c.example")


def _random_document(rng: random.Random, host: str) -> dict:
    slug = f"p{rng.randrange(3)}"
    document = practice(host, slug, name=rng.choice(("X", "Y")), steps=("eins",)[: rng.randrange(2)])
    items = []
    for _ in range(rng.randrange(3)):
        target = rng.choice((*TARGETS, f"https://{rng.choice(HOSTS)}/practices/p{rng.randrange(3)}"))
        item: dict = {"id": target, "name": rng.choice(("X", "Y"))}
        if rng.random() < 0.3:
            item["tag"] = [{"type": "Hashtag", "name": "#t"}]
        items.append(item)
    return with_attachment(document, *items) if items else document


def _expected(converter_index: HubIndex, written: dict[tuple[str, str], dict]) -> set[str]:
    model = ox.Store()
    for (host, _), document in written.items():
        model.extend(converter_index.quads_of(actor(host), document))
    return canonical(model)


def _write(rng: random.Random, index: HubIndex, written: dict[tuple[str, str], dict]) -> None:
    host, roll = rng.choice(HOSTS), rng.random()
    if roll < 0.6 or not written:
        document = _random_document(rng, host)
        for key in [key for key in written if key[1] == document["id"]]:
            del written[key]
        index.add_contribution(actor(host), document)
        written[(host, document["id"])] = document
    elif roll < 0.8:
        uri = rng.choice(sorted({key[1] for key in written}))
        for key in [key for key in written if key[1] == uri]:
            del written[key]
        index.remove_contribution(uri)
    elif roll < 0.95:  # the member's graph afresh, possibly with another member's document
        keep = {uri: doc for (owner, uri), doc in written.items() if owner == host and rng.random() < 0.7}
        if rng.random() < 0.5:
            extra = _random_document(rng, rng.choice(HOSTS))
            keep[extra["id"]] = {**extra, "attributedTo": [extra["attributedTo"], actor(host)]}
        for key in [key for key in written if key[0] == host]:
            del written[key]
        index.replace_member(actor(host), list(keep.values()))
        written.update({(host, uri): doc for uri, doc in keep.items()})
    else:  # a rebuild indexes a document once: one in two graphs keeps the first
        seen: set[str] = set()
        for key in sorted(written):
            if key[1] in seen:
                del written[key]
            seen.add(key[1])
        report = index.rebuild([(actor(host), doc) for (host, _), doc in sorted(written.items())])
        assert report.skipped == ()


def _fast_index() -> HubIndex:
    return make_index(ThreadRunner())


def _general_index() -> HubIndex:
    """Every document on the general path (pyld), not the known-context fast path."""
    return HubIndex(None, contexts={}, fallback=lambda doc: to_nquads(doc, doc["id"]), runner=ThreadRunner())


@pytest.mark.parametrize(("seed", "make"), [(1, _fast_index), (2, _fast_index), (3, _fast_index),
                                            (4, _general_index)])
def test_random_writes_leave_exactly_the_documents_quads(seed, make):
    rng = random.Random(seed)
    index = make()
    reference = HubIndex(None, contexts=bundled_contexts(), runner=ThreadRunner())
    written: dict[tuple[str, str], dict] = {}
    shared = 0
    for _ in range(120 if make is _fast_index else 40):
        _write(rng, index, written)
        assert canonical(index.store) == _expected(reference, written)
        shared = max(shared, len(index._claims))
    assert shared >= 3  # claims were made (and shared) along the way


# --- an on-disk index keeps the claims beside its store ---

def _on_disk(path) -> HubIndex:
    return HubIndex(path, contexts=bundled_contexts(), runner=ThreadRunner())


def test_the_claims_outlive_the_process_with_an_on_disk_store(tmp_path):
    owner = practice(A, "owner", name="Eigen")
    claimer = with_attachment(stance(A, "s", about=owner["id"], position="agree"),
                              {"id": owner["id"], "name": "Eigen"},
                              {"id": OTHER, "tag": [{"type": "Hashtag", "name": "#akte"}]})
    index = _on_disk(tmp_path / "index")
    assert index.claims_complete  # a new store
    index.add_contribution(actor(A), owner)
    index.add_contribution(actor(A), claimer)
    index.flush()
    del index
    index = _on_disk(tmp_path / "index")
    assert index.claims_complete
    index.remove_contribution(owner["id"])
    assert names_of(index, owner["id"]) == {("Eigen", actor(A))}  # the claimer's, kept
    index.remove_contribution(claimer["id"])
    assert len(index.store) == 0


def test_a_store_without_its_claims_is_incomplete_until_a_rebuild(tmp_path, caplog):
    document = with_attachment(practice(A, "p", name="P"), {"id": OTHER, "name": "Anlage"})
    index = _on_disk(tmp_path / "index")
    index.add_contribution(actor(A), document)
    del index
    claims = tmp_path / "index.claims.json"
    claims.unlink()  # as for a store indexed before the claims were kept
    index = _on_disk(tmp_path / "index")
    assert not index.claims_complete
    index.rebuild([(actor(A), document)])
    assert index.claims_complete and claims.exists()
    del index
    claims.write_text("{not json", encoding="utf-8")
    index = _on_disk(tmp_path / "index")
    assert not index.claims_complete
    assert "unreadable" in caplog.text
    index.rebuild([(actor(A), document)])
    index.remove_contribution(document["id"])
    assert len(index.store) == 0


def test_a_new_store_whose_documents_claim_nothing_is_complete_when_reopened(tmp_path):
    # the common case: no document states anything about another node; the record is
    # still written, or every start would take the store for one indexed before records
    index = _on_disk(tmp_path / "index")
    index.add_contribution(actor(A), practice(A, "p", name="P"))
    index.flush()
    del index
    assert (tmp_path / "index.claims.json").exists()
    assert _on_disk(tmp_path / "index").claims_complete


class _Crash(BaseException):
    """The process dies here (not an error any code handles)."""


def _crash_before_the_record_is_saved(tmp_path, monkeypatch, write) -> HubIndex:
    """``write`` reaches the store, the process dies before the claims record is
    replaced, and the index is opened again."""
    index = _on_disk(tmp_path / "index")

    def crash(self, claims):
        raise _Crash

    with monkeypatch.context() as patched:
        patched.setattr(ClaimsRecord, "save", crash)
        with pytest.raises(_Crash):
            write(index)
    index.flush()
    del index
    return _on_disk(tmp_path / "index")


def test_after_a_failed_write_the_marker_stays_until_a_rebuild(tmp_path, monkeypatch):
    document = with_attachment(practice(A, "p", name="P"), {"id": OTHER, "name": "Anlage"})
    index = _on_disk(tmp_path / "index")

    def failing(self, claims):
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(ClaimsRecord, "save", failing)
        with pytest.raises(OSError, match="disk full"):
            index.add_contribution(actor(A), document)
    assert not index.claims_complete
    index.add_contribution(actor(B), practice(B, "q", name="Q"))  # a later write succeeds
    assert (tmp_path / "index.claims.writing").exists()
    index.flush()
    del index
    index = _on_disk(tmp_path / "index")
    assert not index.claims_complete  # so the hub rebuilds it at its start
    index.rebuild([(actor(A), document)])
    assert index.claims_complete and not (tmp_path / "index.claims.writing").exists()


def test_a_finished_write_leaves_no_marker_and_a_complete_record(tmp_path):
    index = _on_disk(tmp_path / "index")
    index.add_contribution(actor(A), with_attachment(practice(A, "p", name="P"),
                                                     {"id": OTHER, "name": "Anlage"}))
    assert not (tmp_path / "index.claims.writing").exists()
    del index
    assert _on_disk(tmp_path / "index").claims_complete


@pytest.mark.parametrize("removal", [False, True])
def test_a_crash_between_the_store_and_its_record_makes_the_record_incomplete(
        tmp_path, monkeypatch, caplog, removal):
    # Replaying the write (the aggregation's watermark had not moved) would not heal the
    # record: the statement about OTHER, in the store without its claim, would be taken
    # for OTHER's own description and stay after the document's removal. So the hub
    # rebuilds such an index at its start, as one without a record.
    document = with_attachment(practice(A, "p", name="P"), {"id": OTHER, "name": "Anlage"})
    kept = practice(B, "q", name="Q")
    first = _on_disk(tmp_path / "index")
    first.add_contribution(actor(B), kept)
    if removal:
        first.add_contribution(actor(A), document)
    del first
    index = _crash_before_the_record_is_saved(
        tmp_path, monkeypatch,
        (lambda index: index.remove_contribution(document["id"])) if removal
        else (lambda index: index.add_contribution(actor(A), document)))
    assert (tmp_path / "index.claims.writing").exists()
    assert not index.claims_complete
    assert "a write was under way" in caplog.text
    index.rebuild([(actor(B), kept)] + ([] if removal else [(actor(A), document)]))
    assert index.claims_complete and not (tmp_path / "index.claims.writing").exists()
    if not removal:
        index.remove_contribution(document["id"])
    assert names_of(index, OTHER) == set()
    index.remove_contribution(kept["id"])
    assert len(index.store) == 0
    del index
    assert _on_disk(tmp_path / "index").claims_complete
