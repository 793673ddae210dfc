"""Edition manifests: canonical hash, hub signature, tamper detection, and the changelog."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime

import pyoxigraph as ox
import pytest
from hub_support import actor, bundled_contexts, practice

from federation.keys import PublicKeyInfo, SigningKey, generate_ed25519_key
from federation.proofs import sign_document
from node.hub.changelog import (
    ContributionChangeKind,
    SectionChangeKind,
    changelog,
    render_html,
    render_markdown,
)
from node.hub.dump import DumpFormat, dump, json_literal, verify_dump
from node.hub.editions import (
    EditionDraft,
    EditionError,
    EditionProblemKind,
    freeze,
    preview,
    read_edition,
    verify_edition,
)
from node.hub.index import JsonLdToQuads
from node.hub.structure import HandbookStructure, Section

HUB = "https://hub.example/actor"
EDITIONS = "https://hub.example/handbook/editions/"
GUETERSLOH, DUEREN = "guetersloh.example", "dueren.example"


class Keys:
    """Ed25519 keys for the hub and the members, and the lookup a verifier is given."""

    def __init__(self, *owners: str) -> None:
        self.signing: dict[str, SigningKey] = {}
        self.public: dict[str, PublicKeyInfo] = {}
        for owner in owners:
            private = generate_ed25519_key()
            key_id = f"{owner}#ed25519-key"
            self.signing[owner] = SigningKey(key_id, private)
            self.public[key_id] = PublicKeyInfo(key_id, owner, private.public_key())

    def lookup(self, key_id: str) -> PublicKeyInfo | None:
        return self.public.get(key_id)

    def sign(self, document: dict, owner: str) -> dict:
        return sign_document(document, self.signing[owner], created=datetime(2026, 11, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(HUB, actor(GUETERSLOH), actor(DUEREN))


def clock_at(day: int):
    return lambda: datetime(2026, 12, day, 9, 0, tzinfo=UTC)


STRUCTURE = HandbookStructure((
    Section("e-akte", "E-Akte", "E-file", 10, text="Wie Kommunen die E-Akte einführen."),
    Section("e-akte-scan", "Scannen", "Scanning", 10, parent="e-akte"),
    Section("portal", "Bürgerportal", "Citizen portal", 20),
))


def signed_practices(keys: Keys) -> dict[str, dict]:
    return {
        "bauamt": keys.sign(practice(GUETERSLOH, "bauamt", name="E-Akte im Bauamt", content="<p>Wir scannen alles. Dann archivieren wir.</p>"), actor(GUETERSLOH)),
        "scan": keys.sign(practice(GUETERSLOH, "scan", name="Posteingang scannen"), actor(GUETERSLOH)),
        "portal": keys.sign(practice(DUEREN, "portal", name="Bürgerportal Düren", topics=("buergerportal-online-dienste",)), actor(DUEREN)),
    }


def draft_of(placements, structure=STRUCTURE) -> EditionDraft:
    return EditionDraft.from_structure(HUB, EDITIONS, structure, placements)


def test_freeze_and_verify_edition_one(keys):
    docs = signed_practices(keys)
    edition = freeze(draft_of({"e-akte": [docs["bauamt"]], "e-akte-scan": [docs["scan"]], "portal": [docs["portal"]]}),
                     None, clock=clock_at(1), key=keys.signing[HUB])
    assert edition.manifest.number == 1
    assert edition.manifest.url == EDITIONS + "1"
    assert [s.section.slug for s in edition.manifest.sections] == ["e-akte", "e-akte-scan", "portal"]
    assert len(edition.manifest_hash) == 64
    assert edition.document["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    result = verify_edition(edition.document, keys.lookup, expected_hash=edition.manifest_hash)
    assert result.ok, result.problems
    # the stored form reads back to the same manifest and hash
    again = read_edition(copy.deepcopy(edition.document))
    assert again.manifest == edition.manifest and again.manifest_hash == edition.manifest_hash


def test_manifest_hash_is_stable_and_changes_with_any_included_thing(keys):
    docs = signed_practices(keys)
    placements = {"e-akte": [docs["bauamt"]], "portal": [docs["portal"]]}
    base = freeze(draft_of(placements), None, clock=clock_at(1), key=keys.signing[HUB])
    resigned = freeze(draft_of(placements), None, clock=clock_at(1), key=Keys(HUB).signing[HUB])
    assert resigned.manifest_hash == base.manifest_hash  # the key is not part of the content

    variants = {
        "other time": freeze(draft_of(placements), None, clock=clock_at(2), key=keys.signing[HUB]),
        "other order": freeze(draft_of({"e-akte": [docs["bauamt"], docs["scan"]], "portal": [docs["portal"]]}), None, clock=clock_at(1), key=keys.signing[HUB]),
        "editorial text": freeze(draft_of(placements, STRUCTURE.with_section(replace(STRUCTURE.get("portal"), text="Neu."))), None, clock=clock_at(1), key=keys.signing[HUB]),
        "other version": freeze(draft_of({"e-akte": [keys.sign({**practice(GUETERSLOH, "bauamt", name="E-Akte im Bauamt v2")}, actor(GUETERSLOH))], "portal": [docs["portal"]]}), None, clock=clock_at(1), key=keys.signing[HUB]),
        "successor": freeze(draft_of(placements), base, clock=clock_at(1), key=keys.signing[HUB]),
    }
    hashes = {name: edition.manifest_hash for name, edition in variants.items()}
    assert base.manifest_hash not in hashes.values()
    assert len(set(hashes.values())) == len(hashes)
    assert variants["successor"].manifest.previous_hash == base.manifest_hash
    assert variants["successor"].manifest.number == 2


def tamper(document: dict, change) -> dict:
    copied = copy.deepcopy(document)
    change(copied)
    return copied


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (lambda d: d["sections"][0].update(titleDe="Gefälscht"), EditionProblemKind.HUB_PROOF_INVALID),
        (lambda d: d["sections"][0]["contributions"].clear(), EditionProblemKind.HUB_PROOF_INVALID),
        (lambda d: d["includedContributions"][0]["document"].update(name="Gefälscht"), EditionProblemKind.CONTRIBUTION_ALTERED),
        (lambda d: d["proof"].update(verificationMethod="https://evil.example/actor#key"), EditionProblemKind.UNKNOWN_KEY),
        (lambda d: d.update(editionNumber="eins"), EditionProblemKind.MALFORMED),
        (lambda d: d["sections"][0]["contributions"][0].update(documentHash="0" * 64), EditionProblemKind.MALFORMED),
    ],
)
def test_tampering_is_detected(keys, change, kind):
    docs = signed_practices(keys)
    edition = freeze(draft_of({"e-akte": [docs["bauamt"]], "portal": [docs["portal"]]}), None, clock=clock_at(1), key=keys.signing[HUB])
    result = verify_edition(tamper(edition.document, change), keys.lookup)
    assert not result.ok
    assert kind in {problem.kind for problem in result.problems}


def test_contribution_altered_and_rehashed_still_fails_its_own_proof(keys):
    docs = signed_practices(keys)
    forged = {**docs["bauamt"], "name": "Gefälscht"}  # keeps the member's old proof
    edition = freeze(draft_of({"e-akte": [forged]}), None, clock=clock_at(1), key=keys.signing[HUB])
    result = verify_edition(edition.document, keys.lookup)
    assert [(p.kind, p.subject) for p in result.problems] == [
        (EditionProblemKind.CONTRIBUTION_PROOF_INVALID, forged["id"])
    ]


def test_wrong_expected_hash_and_wrong_hub_key_are_reported(keys):
    edition = freeze(draft_of({}), None, clock=clock_at(1), key=keys.signing[HUB])
    assert verify_edition(edition.document, keys.lookup, expected_hash="f" * 64).problems[0].kind is EditionProblemKind.HASH_MISMATCH
    impostor = Keys(HUB)
    assert not verify_edition(edition.document, impostor.lookup).ok


def test_freeze_refuses_unsigned_or_unknown_placements(keys):
    with pytest.raises(EditionError) as unsigned:
        freeze(draft_of({"portal": [practice(DUEREN, "x", name="X")]}), None, clock=clock_at(1), key=keys.signing[HUB])
    assert unsigned.value.field == "sections[portal].contributions[0]"
    with pytest.raises(EditionError) as unknown:
        draft_of({"nope": []})
    assert unknown.value.field == "placements"
    with pytest.raises(EditionError) as naive:
        freeze(draft_of({}), None, clock=lambda: datetime(2026, 12, 1), key=keys.signing[HUB])
    assert naive.value.field == "clock"


def test_changelog_on_a_crafted_pair(keys):
    docs = signed_practices(keys)
    first = freeze(
        draft_of({"e-akte": [docs["bauamt"]], "e-akte-scan": [docs["scan"]], "portal": [docs["portal"]]}),
        None, clock=clock_at(1), key=keys.signing[HUB],
    )
    bauamt_v2 = keys.sign(practice(GUETERSLOH, "bauamt", name="E-Akte im Bauamt", content="<p>Wir scannen alles. Dann signieren wir.</p>"), actor(GUETERSLOH))
    newcomer = keys.sign(practice(DUEREN, "payment", name="E-Payment <script>alert(1)</script>"), actor(DUEREN))
    structure = (
        STRUCTURE.with_section(Section("portal", "Bürgerportal und Online-Dienste", "Citizen portal", 20))
        .with_section(replace(STRUCTURE.get("e-akte"), text="Neuer Einleitungstext."))
        .with_section(Section("e-payment", "E-Payment", "E-payment", 30))
        .without_section("e-akte-scan")
    )
    second = freeze(
        draft_of({"e-akte": [bauamt_v2], "portal": [docs["scan"]], "e-payment": [newcomer]}, structure),
        first, clock=clock_at(8), key=keys.signing[HUB],
    )
    log = changelog(first.manifest, second.manifest)

    assert (log.from_number, log.to_number) == (1, 2)
    changed = {(c.kind, c.uri) for c in log.contributions}
    assert changed == {
        (ContributionChangeKind.UPDATED, docs["bauamt"]["id"]),
        (ContributionChangeKind.MOVED, docs["scan"]["id"]),
        (ContributionChangeKind.ADDED, newcomer["id"]),
        (ContributionChangeKind.REMOVED, docs["portal"]["id"]),
    }
    updated = log.contributions_of(ContributionChangeKind.UPDATED)[0]
    assert "-Dann archivieren wir." in updated.diff and "+Dann signieren wir." in updated.diff
    moved = log.contributions_of(ContributionChangeKind.MOVED)[0]
    assert (moved.sections_before, moved.sections_after) == (("e-akte-scan",), ("portal",))
    sections = {(c.kind, c.slug) for c in log.sections}
    assert sections == {
        (SectionChangeKind.RENAMED, "portal"),
        (SectionChangeKind.TEXT_CHANGED, "e-akte"),
        (SectionChangeKind.ADDED, "e-payment"),
        (SectionChangeKind.REMOVED, "e-akte-scan"),
    }

    markdown = render_markdown(log, "de")
    assert "# Änderungen in Ausgabe 2 (gegenüber Ausgabe 1)" in markdown
    assert "umbenannt: „Bürgerportal“ → „Bürgerportal und Online-Dienste“" in markdown
    assert "Changes in edition 2" in render_markdown(log, "en")
    grouped = {section.slug: {c.kind for c in changes} for section, changes in log.by_section()}
    assert grouped == {
        "e-akte": {ContributionChangeKind.UPDATED},
        "portal": {ContributionChangeKind.MOVED, ContributionChangeKind.REMOVED},  # removed from there
        "e-payment": {ContributionChangeKind.ADDED},
    }
    assert "## Beiträge: E-Payment" in markdown
    assert "verschoben: „Posteingang scannen“" in markdown and "(e-akte-scan → portal)" in markdown
    html = str(render_html(log, "de"))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert changelog(second.manifest, second.manifest).is_empty


def test_changelog_of_the_first_edition_lists_everything_as_added(keys):
    docs = signed_practices(keys)
    first = freeze(draft_of({"portal": [docs["portal"]]}), None, clock=clock_at(1), key=keys.signing[HUB])
    log = changelog(None, first.manifest)
    assert [c.kind for c in log.contributions] == [ContributionChangeKind.ADDED]
    assert {c.kind for c in log.sections} == {SectionChangeKind.ADDED}
    assert "erste Ausgabe" in render_markdown(log)


def test_preview_is_the_unsigned_next_edition(keys):
    docs = signed_practices(keys)
    first = freeze(draft_of({"portal": [docs["portal"]]}), None, clock=clock_at(1), key=keys.signing[HUB])
    upcoming = preview(draft_of({"portal": [docs["portal"], docs["scan"]]}), first, clock=clock_at(5))
    assert upcoming.number == 2 and upcoming.previous_hash == first.manifest_hash
    assert [c.uri for c in upcoming.contributions()] == [docs["portal"]["id"], docs["scan"]["id"]]


@pytest.mark.parametrize("dump_format", list(DumpFormat))
def test_every_proof_in_a_dump_verifies_offline(keys, dump_format):
    docs = signed_practices(keys)
    edition = freeze(draft_of({"e-akte": [docs["bauamt"]], "e-akte-scan": [docs["scan"]], "portal": [docs["portal"]]}),
                     None, clock=clock_at(1), key=keys.signing[HUB])
    data = dump(edition, JsonLdToQuads(bundled_contexts()), dump_format)
    result = verify_dump(data, dump_format, keys.lookup)
    assert result.ok, result.problems
    assert result.manifest_hash == edition.manifest_hash
    if dump_format is not DumpFormat.JSONLD:
        quads = list(ox.parse(data, format=ox.RdfFormat.N_QUADS if dump_format is DumpFormat.NQUADS else ox.RdfFormat.TRIG))
        graphs = {q.graph_name.value for q in quads}
        assert graphs == {edition.manifest.url, *(d["id"] for d in docs.values())}


def test_a_doctored_dump_is_detected(keys):
    docs = signed_practices(keys)
    edition = freeze(draft_of({"portal": [docs["portal"]]}), None, clock=clock_at(1), key=keys.signing[HUB])
    data = dump(edition, JsonLdToQuads(bundled_contexts()), DumpFormat.NQUADS).decode()
    # swap the carried contribution for another (validly signed) document
    original = json_literal(docs["portal"]).value
    replacement = json_literal(docs["scan"]).value
    lines = [
        line.replace(str(ox.Literal(original))[1:-1], str(ox.Literal(replacement))[1:-1])
        if "signedDocument" in line else line
        for line in data.splitlines(keepends=True)
    ]
    doctored = "".join(lines)
    assert doctored != data
    result = verify_dump(doctored.encode(), DumpFormat.NQUADS, keys.lookup)
    assert [p.kind for p in result.problems] == [EditionProblemKind.CONTRIBUTION_ALTERED]
    forged_manifest = data.replace("Bürgerportal Düren", "Bürgerportal Köln")
    assert not verify_dump(forged_manifest.encode(), DumpFormat.NQUADS, keys.lookup).ok


def test_uncanonicalisable_content_is_reported_not_raised(keys):
    docs = signed_practices(keys)
    edition = freeze(draft_of({"portal": [docs["portal"]]}), None, clock=clock_at(1), key=keys.signing[HUB])
    huge = tamper(edition.document, lambda d: d["includedContributions"][0]["document"].update(effort=2**80))
    assert [p.kind for p in verify_edition(huge, keys.lookup).problems] == [EditionProblemKind.MALFORMED]
    top = tamper(edition.document, lambda d: d.update(extra=2**80))
    assert [p.kind for p in verify_edition(top, keys.lookup).problems] == [EditionProblemKind.MALFORMED]
