"""Handbook editions: freeze a draft into an immutable, content-addressed, signed manifest.

A manifest lists the sections in reading order (slug, titles, editorial text) and,
per section, which contributions it includes by id and document hash; the exact
signed documents are carried once each in ``includedContributions``.

- ``manifest_hash`` = SHA-256 (hex) of the RFC 8785 (JCS) form of the manifest
  document *without* its proof: the edition's content address, stable across
  re-signing and independent of key material.
- The hub signs the manifest document with an ``eddsa-jcs-2022`` proof
  (``federation.proofs``), so a copy verifies offline with the hub's key.
- ``verify_edition`` checks the hash, the hub's proof, that every section points at
  an included document with the hash it names, and every contribution's own proof
  with keys from a lookup the caller passes in (no hidden I/O).
"""

from __future__ import annotations

import copy
import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785

from federation.keys import PublicKeyInfo, SigningKey
from federation.proofs import proof_method, sign_document, verify_document
from federation.timestamps import TimestampError, format_timestamp, parse_timestamp
from node.hub.contribution import ContributionFormatError, document_hash
from node.hub.structure import HandbookStructure, Section
from vocab.loader import DEFAULT_CONTEXT

# Terms of the manifest that the Praxisnetz context does not define yet, so that the
# manifest reads as RDF too (ActivityStreams maps unknown terms to blank nodes).
MANIFEST_TERMS: Mapping[str, Any] = {
    "previousManifestHash": "https://w3id.org/praxisnetz#previousManifestHash",
    "sections": {"@id": "https://w3id.org/praxisnetz#sections", "@container": "@list"},
    "slug": "https://w3id.org/praxisnetz#slug",
    "titleDe": {"@id": "http://purl.org/dc/terms/title", "@language": "de"},
    "titleEn": {"@id": "http://purl.org/dc/terms/title", "@language": "en"},
    "parentSection": "https://w3id.org/praxisnetz#parentSection",
    "order": {"@id": "https://w3id.org/praxisnetz#order", "@type": "http://www.w3.org/2001/XMLSchema#integer"},
    "editorialText": {"@id": "https://w3id.org/praxisnetz#editorialText", "@language": "de"},
    "contributions": {"@id": "https://w3id.org/praxisnetz#includes", "@container": "@list"},
    "documentHash": "https://w3id.org/praxisnetz#documentHash",
    "includedContributions": {"@id": "https://w3id.org/praxisnetz#includedContribution", "@type": "@json"},
}
MANIFEST_CONTEXT: tuple[Any, ...] = (*DEFAULT_CONTEXT, MANIFEST_TERMS)

Clock = Callable[[], datetime]
KeyLookup = Callable[[str], PublicKeyInfo | None]


class EditionError(ValueError):
    """An edition cannot be frozen or read; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class IncludedContribution:
    """One exact signed version of a contribution: its document and that document's hash."""

    uri: str
    document_hash: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class ManifestSection:
    section: Section
    contributions: tuple[IncludedContribution, ...]  # in the editors' order


@dataclass(frozen=True)
class EditionManifest:
    number: int
    url: str
    hub: str
    created: datetime
    previous_hash: str | None
    sections: tuple[ManifestSection, ...]

    def contributions(self) -> tuple[IncludedContribution, ...]:
        """Each included contribution once, in order of first appearance."""
        seen: dict[str, IncludedContribution] = {}
        for section in self.sections:
            for included in section.contributions:
                seen.setdefault(included.uri, included)
        return tuple(seen.values())


@dataclass(frozen=True)
class FrozenEdition:
    manifest: EditionManifest
    manifest_hash: str
    document: Mapping[str, Any]  # the signed manifest document, as stored and served

    def canonical_bytes(self) -> bytes:
        return rfc8785.dumps(self.document)


@dataclass(frozen=True)
class DraftSection:
    section: Section
    contributions: tuple[Mapping[str, Any], ...]  # accepted signed documents, in order


@dataclass(frozen=True)
class EditionDraft:
    """What the editors decided: the handbook as it would be frozen now."""

    hub: str
    editions_url: str  # e.g. https://hub.example/handbook/editions/
    sections: tuple[DraftSection, ...]

    @classmethod
    def from_structure(
        cls,
        hub: str,
        editions_url: str,
        structure: HandbookStructure,
        placements: Mapping[str, Sequence[Mapping[str, Any]]],
    ) -> EditionDraft:
        """Sections in reading order, each with the documents placed in it (by slug)."""
        unknown = set(placements) - {section.slug for section in structure.sections}
        if unknown:
            raise EditionError("placements", f"unknown section(s): {', '.join(sorted(unknown))}")
        return cls(
            hub,
            editions_url,
            tuple(
                DraftSection(section, tuple(placements.get(section.slug, ())))
                for section in structure.reading_order()
            ),
        )


def preview(draft: EditionDraft, previous: FrozenEdition | None, *, clock: Clock) -> EditionManifest:
    """The manifest the draft would freeze into now (unsigned): the "next edition" view."""
    number = previous.manifest.number + 1 if previous is not None else 1
    created = clock()
    try:
        format_timestamp(created)
    except TimestampError as exc:
        raise EditionError("clock", str(exc)) from exc
    return EditionManifest(
        number=number,
        url=f"{draft.editions_url.rstrip('/')}/{number}",
        hub=draft.hub,
        created=created,
        previous_hash=previous.manifest_hash if previous is not None else None,
        sections=tuple(_manifest_section(s) for s in draft.sections),
    )


def freeze(
    draft: EditionDraft, previous: FrozenEdition | None, *, clock: Clock, key: SigningKey
) -> FrozenEdition:
    """Freeze ``draft`` as the edition after ``previous`` (or edition 1), signed with ``key``."""
    manifest = preview(draft, previous, clock=clock)
    unsigned = manifest_document(manifest)
    signed = sign_document(unsigned, key, created=manifest.created)
    return FrozenEdition(manifest, hash_of(unsigned), signed)


def _manifest_section(draft_section: DraftSection) -> ManifestSection:
    included = []
    seen: set[str] = set()
    for index, document in enumerate(draft_section.contributions):
        field = f"sections[{draft_section.section.slug}].contributions[{index}]"
        uri = document.get("id") if isinstance(document, Mapping) else None
        if not isinstance(uri, str):
            raise EditionError(field, "a contribution needs an id")
        if "proof" not in document:
            raise EditionError(field, f"{uri} is not a signed version (no proof)")
        if uri in seen:
            raise EditionError(field, f"{uri} is placed twice in one section")
        seen.add(uri)
        try:
            digest = document_hash(document)
        except ContributionFormatError as exc:
            raise EditionError(field, exc.message) from exc
        included.append(IncludedContribution(uri, digest, copy.deepcopy(dict(document))))
    return ManifestSection(draft_section.section, tuple(included))


def hash_of(unsigned_document: Mapping[str, Any]) -> str:
    try:
        canonical = rfc8785.dumps(unsigned_document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise EditionError("document", f"cannot be canonicalised: {exc}") from exc
    return hashlib.sha256(canonical).hexdigest()


def manifest_document(manifest: EditionManifest) -> dict[str, Any]:
    """The manifest as JSON(-LD), without proof: what is hashed and signed."""
    document: dict[str, Any] = {
        "@context": list(copy.deepcopy(MANIFEST_CONTEXT)),
        "id": manifest.url,
        "type": "Edition",
        "attributedTo": manifest.hub,
        "editionNumber": manifest.number,
        "published": format_timestamp(manifest.created),
        "sections": [_section_json(section) for section in manifest.sections],
        "includedContributions": [
            {"id": c.uri, "documentHash": c.document_hash, "document": copy.deepcopy(dict(c.document))}
            for c in manifest.contributions()
        ],
    }
    if manifest.previous_hash is not None:
        document["previousEdition"] = f"{manifest.url.rsplit('/', 1)[0]}/{manifest.number - 1}"
        document["previousManifestHash"] = manifest.previous_hash
    return document


def _section_json(manifest_section: ManifestSection) -> dict[str, Any]:
    section = manifest_section.section
    out: dict[str, Any] = {
        "type": "Section",
        "slug": section.slug,
        "titleDe": section.title_de,
        "titleEn": section.title_en,
        "order": section.order,
        "editorialText": section.text,
        "contributions": [
            {"id": c.uri, "documentHash": c.document_hash} for c in manifest_section.contributions
        ],
    }
    if section.parent is not None:
        out["parentSection"] = section.parent
    return out


def read_edition(document: Mapping[str, Any]) -> FrozenEdition:
    """Read a stored signed manifest back (no verification: see ``verify_edition``)."""
    if not isinstance(document, Mapping):
        raise EditionError("document", "must be a JSON object")
    unsigned = {key: value for key, value in document.items() if key != "proof"}
    reader = _ManifestReader(unsigned)
    return FrozenEdition(reader.manifest(), hash_of(unsigned), document)


class _ManifestReader:
    """Parses a manifest document field by field, naming the field on failure."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document

    def manifest(self) -> EditionManifest:
        doc = self._document
        number = doc.get("editionNumber")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise EditionError("editionNumber", "must be a positive integer")
        try:
            created = parse_timestamp(doc.get("published"))
        except TimestampError as exc:
            raise EditionError("published", str(exc)) from exc
        previous = doc.get("previousManifestHash")
        if previous is not None and not _is_hash(previous):
            raise EditionError("previousManifestHash", "must be a SHA-256 hex digest")
        documents = self._included()
        sections = tuple(
            self._section(index, item, documents)
            for index, item in enumerate(_list(doc.get("sections"), "sections"))
        )
        return EditionManifest(
            number=number,
            url=_string(doc.get("id"), "id"),
            hub=_string(doc.get("attributedTo"), "attributedTo"),
            created=created,
            previous_hash=previous,
            sections=sections,
        )

    def _included(self) -> dict[str, IncludedContribution]:
        included: dict[str, IncludedContribution] = {}
        items = _list(self._document.get("includedContributions"), "includedContributions")
        for index, item in enumerate(items):
            field = f"includedContributions[{index}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("document"), Mapping):
                raise EditionError(field, "must be an object with a document")
            uri = _string(item.get("id"), f"{field}.id")
            digest = item.get("documentHash")
            if not _is_hash(digest):
                raise EditionError(f"{field}.documentHash", "must be a SHA-256 hex digest")
            included[uri] = IncludedContribution(uri, digest, item["document"])
        return included

    def _section(
        self, index: int, item: Any, documents: Mapping[str, IncludedContribution]
    ) -> ManifestSection:
        field = f"sections[{index}]"
        if not isinstance(item, Mapping):
            raise EditionError(field, "must be an object")
        order = item.get("order", 0)
        if not isinstance(order, int) or isinstance(order, bool):
            raise EditionError(f"{field}.order", "must be an integer")
        parent = item.get("parentSection")
        section = Section(
            slug=_string(item.get("slug"), f"{field}.slug"),
            title_de=_string(item.get("titleDe"), f"{field}.titleDe"),
            title_en=_string(item.get("titleEn", ""), f"{field}.titleEn", allow_empty=True),
            order=order,
            parent=_string(parent, f"{field}.parentSection") if parent is not None else None,
            text=_string(item.get("editorialText", ""), f"{field}.editorialText", allow_empty=True),
        )
        refs = []
        for ref_index, ref in enumerate(_list(item.get("contributions"), f"{field}.contributions")):
            ref_field = f"{field}.contributions[{ref_index}]"
            uri = _string(ref.get("id") if isinstance(ref, Mapping) else None, f"{ref_field}.id")
            if uri not in documents:
                raise EditionError(ref_field, f"{uri} is not among the included contributions")
            if ref.get("documentHash") != documents[uri].document_hash:
                raise EditionError(ref_field, f"{uri}: hash differs from the included document")
            refs.append(documents[uri])
        return ManifestSection(section, tuple(refs))


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise EditionError(field, "must be a list")
    return value


def _string(value: Any, field: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise EditionError(field, "must be a non-empty string" if not allow_empty else "must be a string")
    return value


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


class EditionProblemKind(enum.Enum):
    MALFORMED = "malformed"
    HASH_MISMATCH = "hash-mismatch"
    HUB_PROOF_INVALID = "hub-proof-invalid"
    CONTRIBUTION_ALTERED = "contribution-altered"
    CONTRIBUTION_PROOF_INVALID = "contribution-proof-invalid"
    UNKNOWN_KEY = "unknown-key"


@dataclass(frozen=True)
class EditionProblem:
    kind: EditionProblemKind
    subject: str  # the edition URL, a contribution id, or the field that is malformed
    detail: str


@dataclass(frozen=True)
class EditionVerification:
    manifest_hash: str | None
    problems: tuple[EditionProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_edition(
    document: Mapping[str, Any], key_lookup: KeyLookup, *, expected_hash: str | None = None
) -> EditionVerification:
    """Check a signed manifest offline: hash, hub proof, and every included contribution.

    ``key_lookup`` maps a proof's verificationMethod to the key (or None if unknown);
    ``expected_hash`` is the manifest hash the caller trusts (from the edition's URL
    or a previous edition), if any.
    """
    try:
        edition = read_edition(document)
    except EditionError as exc:
        return EditionVerification(None, (EditionProblem(EditionProblemKind.MALFORMED, exc.field, exc.message),))
    problems: list[EditionProblem] = []
    url = edition.manifest.url
    if expected_hash is not None and edition.manifest_hash != expected_hash:
        problems.append(EditionProblem(EditionProblemKind.HASH_MISMATCH, url, "manifest hash differs from the expected one"))
    problems.extend(_proof_problems(document, key_lookup, url, EditionProblemKind.HUB_PROOF_INVALID))
    for included in edition.manifest.contributions():
        # read_edition canonicalised the whole manifest, so every document canonicalises
        if document_hash(included.document) != included.document_hash or included.document.get("id") != included.uri:
            problems.append(EditionProblem(EditionProblemKind.CONTRIBUTION_ALTERED, included.uri, "document does not match its recorded hash"))
            continue
        problems.extend(
            _proof_problems(included.document, key_lookup, included.uri, EditionProblemKind.CONTRIBUTION_PROOF_INVALID)
        )
    return EditionVerification(edition.manifest_hash, tuple(problems))


def _proof_problems(
    document: Mapping[str, Any], key_lookup: KeyLookup, subject: str, kind: EditionProblemKind
) -> list[EditionProblem]:
    method = proof_method(document)
    key = key_lookup(method) if method is not None else None
    if key is None:
        return [EditionProblem(EditionProblemKind.UNKNOWN_KEY, subject, f"no key for {method!r}")]
    result = verify_document(document, key)
    return [] if result.ok else [EditionProblem(kind, subject, result.detail)]
