"""Handbook structure: validation, reading order, JSON round trip, default structure."""

from __future__ import annotations

import pytest

from node.hub.structure import HandbookStructure, Section, StructureError, default_structure


def test_default_structure_is_valid_and_ordered():
    structure = default_structure()
    chapters = structure.chapters()
    assert chapters[0].section.slug == "einleitung"
    assert [c.section.slug for c in chapters if c.sections] == ["e-akte"]
    order = [s.slug for s in structure.reading_order()]
    assert order.index("e-akte") < order.index("e-akte-einfuehrung") < order.index("e-akte-scannen") < order.index("kommunikation")
    assert all(section.title_en for section in structure.sections)


def test_json_round_trip():
    structure = default_structure()
    assert HandbookStructure.from_json(structure.to_json()) == HandbookStructure(structure.reading_order())


@pytest.mark.parametrize(
    ("sections", "field"),
    [
        ((Section("Groß", "x"),), "Groß"),
        ((Section("a", "x"), Section("a", "y")), "a"),
        ((Section("a", "  "),), "a"),
        ((Section("a", "x", parent="missing"),), "a"),
        ((Section("a", "x"), Section("b", "y", parent="a"), Section("c", "z", parent="b")), "c"),
    ],
)
def test_inconsistent_structures_are_refused(sections, field):
    with pytest.raises(StructureError) as caught:
        HandbookStructure(sections)
    assert caught.value.field == field


def test_from_json_names_the_bad_field():
    with pytest.raises(StructureError) as caught:
        HandbookStructure.from_json([{"slug": "a", "title_de": "A", "order": "1"}])
    assert caught.value.field == "sections[0].order"


def test_editing_returns_new_structures():
    structure = default_structure()
    added = structure.with_section(Section("e-akte-archiv", "Archivierung", parent="e-akte", order=30))
    assert [s.slug for s in added.children("e-akte")][-1] == "e-akte-archiv"
    assert structure.get("e-akte-archiv") is None
    with pytest.raises(StructureError):
        added.without_section("e-akte")  # still has sections
    assert added.without_section("e-akte-archiv") == HandbookStructure(
        tuple(s for s in added.sections if s.slug != "e-akte-archiv")
    )
