"""Example content: the eight model municipalities, their contributions and the handbook.

The demo publishes these files through the real federation, so every field the node's
`praxisnetz publish` reads must be present and well-formed, and every cross-reference
(`about`) must point at something that exists.
"""

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rdflib
from rdflib.namespace import RDF, SKOS

from examples.catalog import (
    KIND_PLURALS,
    MUNICIPALITIES_DIR,
    ExampleContentError,
    ExampleFile,
    Reference,
    load_contributions,
    load_handbook,
    load_nodes,
    parse_example_file,
    parse_reference,
    render_for_publish,
)
from node.authoring import build_document
from node.config import NodeConfig, NodeKind
from node.hub.structure import HandbookStructure
from node.markdown_import import parse_markdown
from node.validation import document_problems

TOPICS_TTL = Path(__file__).resolve().parent.parent / "vocab" / "topics.ttl"
MUNICIPALITY_SLUGS = {
    "guetersloh",
    "dueren",
    "halle-saale",
    "norderstedt",
    "ibbenbueren",
    "cochem-zell",
    "heidekreis",
    "ortenaukreis",
}
COMMON_FIELDS = ("kind", "slug", "title", "summary", "topics", "language")
REQUIRED_BY_KIND = {
    "practice": ("status", "steps", "effort", "duration", "lessons"),
    "experience": ("about",),
    "stance": ("about", "position", "reason"),
    "material": ("file",),
    "comment": ("about",),
}
PRACTICE_STATUSES = {"planned", "piloting", "in-operation", "discontinued"}
POSITIONS = {"agree", "disagree", "partly"}
ISO_DURATION = re.compile(r"^P(?=\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
NODE_REF = re.compile(r"^node:(?P<node>[a-z0-9-]+)/(?P<plural>[a-z]+)/(?P<slug>[a-z0-9-]+)$")
HUB_REF = re.compile(r"^hub:(?P<section>[a-z0-9-]+)$")


def topic_slugs() -> frozenset[str]:
    """Topic slugs from vocab/topics.ttl: each concept's skos:notation and IRI fragment."""
    graph = rdflib.Graph().parse(TOPICS_TTL, format="turtle")
    slugs = set()
    for concept in graph.subjects(RDF.type, SKOS.Concept):
        slugs.add(re.split(r"[#/]", str(concept))[-1])
        slugs.update(str(n) for n in graph.objects(concept, SKOS.notation))
    return frozenset(slugs)


@pytest.fixture(scope="module")
def scheme_topics() -> frozenset[str]:
    slugs = topic_slugs()
    assert len(slugs) >= 14, "vocab/topics.ttl has fewer topics than the handbook needs"
    return slugs


@pytest.fixture(scope="module")
def nodes():
    return load_nodes()


@pytest.fixture(scope="module")
def contributions() -> dict[str, list[ExampleFile]]:
    return {slug: load_contributions(slug) for slug in sorted(MUNICIPALITY_SLUGS)}


@pytest.fixture(scope="module")
def all_files(contributions) -> list[ExampleFile]:
    return [f for files in contributions.values() for f in files]


@pytest.fixture(scope="module")
def handbook():
    return load_handbook()


def by_kind(files, kind):
    return [f for f in files if f.kind == kind]


# --- nodes -------------------------------------------------------------------------


def test_nodes_are_the_eight_model_municipalities_and_the_hub(nodes):
    slugs = [n.slug for n in nodes]
    assert len(slugs) == len(set(slugs))
    assert set(slugs) == MUNICIPALITY_SLUGS | {"kochbuch"}
    hub = next(n for n in nodes if n.is_hub)
    assert hub.slug == "kochbuch" and hub.name == "Praxisnetz Kochbuch (Hub)"
    kinds = {n.slug: n.kind for n in nodes}
    assert {s for s, k in kinds.items() if k == "district"} == {
        "cochem-zell",
        "heidekreis",
        "ortenaukreis",
    }
    assert kinds["ibbenbueren"] == "association"


def test_ags_are_eight_digits_unique_and_districts_are_padded(nodes):
    municipalities = [n for n in nodes if not n.is_hub]
    for node in municipalities:
        assert node.ags and re.fullmatch(r"\d{8}", node.ags), node.slug
        assert node.state, node.slug
        assert node.description, node.slug
        if node.kind == "district":
            assert node.ags.endswith("000") and node.ags_form == "district-padded", node.slug
    assert len({n.ags for n in municipalities}) == len(municipalities)
    assert {n.slug: n.ags for n in municipalities}["cochem-zell"] == "07135000"


def test_every_municipality_has_a_folder_and_no_stray_files(nodes):
    folders = {p.name for p in MUNICIPALITIES_DIR.iterdir() if p.is_dir()}
    assert folders == MUNICIPALITY_SLUGS
    for folder in MUNICIPALITIES_DIR.iterdir():
        if not folder.is_dir():
            continue
        materials = {
            str(f.front_matter["file"])
            for f in load_contributions(folder.name)
            if f.kind == "material"
        }
        for path in folder.iterdir():
            assert path.suffix == ".md" or path.name in materials, f"unreferenced file {path}"


# --- contributions -----------------------------------------------------------------


def test_every_file_has_the_fields_of_its_kind(all_files):
    for f in all_files:
        fm = f.front_matter
        for field in COMMON_FIELDS + REQUIRED_BY_KIND[f.kind]:
            assert fm.get(field) not in (None, "", []), f"{f.path}: {field} missing"
        assert fm["language"] == "de", f.path
        assert SLUG.match(f.slug) and f.path.stem == f.slug, f.path
        assert isinstance(fm["title"], str) and isinstance(fm["summary"], str), f.path
        assert len(f.body.split()) >= 40, f"{f.path}: body too short"
        assert "\u00ad" not in f.body, f"{f.path}: soft hyphen in body"
        # a word split at a line end renders as "Fachverfahrens- Schnittstelle"
        assert not re.search(r"[a-zäöüß]-\n", f.body), f"{f.path}: word split at line end"


def test_practices_are_complete(all_files):
    for f in by_kind(all_files, "practice"):
        fm = f.front_matter
        assert fm["status"] in PRACTICE_STATUSES, f.path
        assert ISO_DURATION.match(str(fm["duration"])), f"{f.path}: duration {fm['duration']}"
        assert len(fm["steps"]) >= 3 and all(isinstance(s, str) for s in fm["steps"]), f.path
        assert len(fm["lessons"]) >= 2 and all(isinstance(s, str) for s in fm["lessons"])
        assert isinstance(fm["effort"], str), f.path
        for heading in ("## Ausgangslage", "## Vorgehen", "## Ergebnis"):
            assert heading in f.body, f"{f.path}: {heading} missing"
        if "legal_basis" in fm:
            # the vocabulary's pn:legalBasis is an IRI; the citations are in the body
            assert fm["legal_basis"] and all(
                re.match(r"^https?://[a-z0-9.-]+/\S*$", url) for url in fm["legal_basis"]
            ), f.path
            assert "## Rechtsgrundlagen" in f.body, f.path
        if "related_service" in fm:
            assert re.fullmatch(r"\d{14}", str(fm["related_service"])), f.path
            assert isinstance(fm["related_service"], str), f"{f.path}: quote the LeiKa key"


def test_each_municipality_has_three_practices_and_an_experience(contributions):
    for slug, files in contributions.items():
        assert len(by_kind(files, "practice")) >= 3, slug
        experiences = by_kind(files, "experience")
        assert experiences, slug
        for exp in experiences:
            ref = NODE_REF.match(exp.about or "")
            assert ref and ref["node"] != slug, f"{exp.path}: must be about another node"


def test_practices_cover_many_topics_and_statuses(all_files):
    practices = by_kind(all_files, "practice")
    covered = {t for p in practices for t in p.topics}
    assert len(covered) >= 15
    assert {p.front_matter["status"] for p in practices} == PRACTICE_STATUSES


def test_slugs_are_unique_per_node(contributions):
    for slug, files in contributions.items():
        counts = Counter(f.slug for f in files)
        assert max(counts.values()) == 1, (slug, counts.most_common(1))


def test_topics_are_valid_slugs(all_files, handbook, scheme_topics):
    valid = scheme_topics
    for f in all_files:
        assert f.topics, f.path
        unknown = set(f.topics) - valid
        assert not unknown, f"{f.path}: unknown topics {unknown}"
    for section in handbook.sections():
        assert section.topics and not set(section.topics) - valid, section.slug


def test_every_about_reference_resolves(contributions, handbook):
    objects = {
        (node, KIND_PLURALS[f.kind], f.slug) for node, files in contributions.items() for f in files
    }
    sections = {s.slug for s in handbook.sections()}
    for node, files in contributions.items():
        for f in files:
            if f.about is None:
                continue
            node_ref, hub_ref = NODE_REF.match(f.about), HUB_REF.match(f.about)
            assert node_ref or hub_ref, f"{f.path}: malformed about {f.about!r}"
            if hub_ref:
                assert hub_ref["section"] in sections, f"{f.path}: no section {f.about}"
                continue
            target = (node_ref["node"], node_ref["plural"], node_ref["slug"])
            assert target in objects, f"{f.path}: {f.about} does not exist"
            assert node_ref["node"] != node, f"{f.path}: refers to its own node"


def test_stances_agree_and_disagree_with_reasons(all_files):
    stances = by_kind(all_files, "stance")
    assert len(stances) >= 10
    positions = Counter(s.front_matter["position"] for s in stances)
    assert set(positions) <= POSITIONS
    assert positions["agree"] and positions["disagree"] and positions["partly"]
    disputed = Counter(s.about for s in stances)
    # at least one object draws both agreement and disagreement (or partial agreement)
    contested = [
        about
        for about, n in disputed.items()
        if n > 1 and len({s.front_matter["position"] for s in stances if s.about == about}) > 1
    ]
    assert contested


def test_materials_have_their_files(all_files):
    materials = by_kind(all_files, "material")
    assert len(materials) >= 4
    for m in materials:
        path = m.material_path
        assert path is not None and path.is_file(), f"{m.path}: {path} missing"
        assert path.parent == m.path.parent and path.stat().st_size > 500, path


def test_comments_are_about_handbook_sections(all_files):
    comments = by_kind(all_files, "comment")
    assert len(comments) >= 4
    assert all(HUB_REF.match(c.about or "") for c in comments)


def example_url(ref: Reference) -> str:
    if ref.is_section:
        return f"https://kochbuch.example/handbook/sections/{ref.slug}"
    return f"https://{ref.node}.example/{ref.plural}/{ref.slug}"


def example_file_url(path: Path) -> str:
    return f"https://{path.parent.name}.example/files/{path.name}"


def test_every_file_passes_the_nodes_publish_parser(all_files, scheme_topics):
    """What the demo hands to `praxisnetz publish` is accepted, field for field."""
    for f in all_files:
        text = render_for_publish(f, example_url, example_file_url)
        parsed = parse_markdown(text, default_slug=None, known_topics=scheme_topics)
        assert parsed.slug == f.slug and parsed.kind.value == f.kind, f.path
        assert parsed.topics == f.topics, f.path
        assert parsed.body.strip() == f.body.strip(), f.path
        if f.about is not None:
            assert parsed.about == example_url(parse_reference(f.about)), f.path
        if f.kind == "practice":
            assert parsed.lessons.count("\n- ") == len(f.front_matter["lessons"]) - 1
        if f.kind == "stance":
            assert parsed.reason == f.front_matter["reason"], f.path
        if f.kind == "material":
            assert parsed.url == example_file_url(f.material_path)
            assert parsed.media_type == "text/plain", f.path


def test_every_published_document_satisfies_the_vocabulary_shapes(
    contributions, nodes, scheme_topics, tmp_path
):
    """The JSON-LD the node builds from each example passes vocab/shapes.ttl."""
    published = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    for node in (n for n in nodes if not n.is_hub):
        config = NodeConfig(
            data_dir=tmp_path / node.slug,
            base_url=f"https://{node.slug}.example",
            name=node.name,
            slug=node.slug,
            ags=node.ags,
            kind=NodeKind(node.kind),
        )
        for f in contributions[node.slug]:
            text = render_for_publish(f, example_url, example_file_url)
            parsed = parse_markdown(text, default_slug=None, known_topics=scheme_topics)
            document = build_document(config, parsed, published=published, updated=None)
            assert document_problems(document) == [], f.path
            assert document["municipalityKey"].endswith("/" + node.ags)
            if f.kind == "practice":
                practice = document
    # the check is live: a duration in words and an unknown status are refused
    assert document_problems({**practice, "implementationDuration": "18 Monate"})
    assert document_problems({**practice, "status": "fertig"})


def test_a_material_without_a_file_url_is_a_typed_error(all_files):
    material = next(f for f in all_files if f.kind == "material")
    with pytest.raises(ExampleContentError) as info:
        render_for_publish(material, example_url)
    assert info.value.field == "file"


@pytest.mark.parametrize(
    "value",
    [
        "node:guetersloh/recipes/x",
        "node:guetersloh/practices",
        "hub:",
        "https://x.example/a",
        "node:Guetersloh/practices/x",
    ],
)
def test_malformed_references_are_refused(value):
    with pytest.raises(ValueError, match="about"):
        parse_reference(value)


def test_references_parse():
    assert parse_reference("hub:e-akte") == Reference(node=None, plural=None, slug="e-akte")
    ref = parse_reference("node:dueren/practices/zentraler-posteingang")
    assert (ref.node, ref.plural, ref.slug, ref.is_section) == (
        "dueren",
        "practices",
        "zentraler-posteingang",
        False,
    )


# --- handbook ----------------------------------------------------------------------


def test_handbook_has_the_kochbuch_chapters(handbook):
    titles = [c.title_de for c in handbook.chapters]
    for expected in (
        "Einführung",
        "Beispiele, die Appetit machen",
        "Voraussetzungen",
        "Organisation und Personal",
        "Prozesse",
        "Technik",
        "Recht",
        "Finanzierung und Förderung",
        "Interkommunale Zusammenarbeit",
        "Evaluation",
        "Ausblick",
    ):
        assert expected in titles
    assert titles[0] == "Einführung" and titles[-1] == "Ausblick"
    technik = next(c for c in handbook.chapters if c.slug == "technik")
    assert {"e-akte", "buergerportal", "e-payment", "it-sicherheit"} <= {
        s.slug for s in technik.sections
    }


def test_handbook_slugs_unique_orders_distinct_texts_present(handbook):
    slugs = [c.slug for c in handbook.chapters] + [s.slug for s in handbook.sections()]
    assert len(slugs) == len(set(slugs))
    assert len({c.order for c in handbook.chapters}) == len(handbook.chapters)
    for chapter in handbook.chapters:
        assert chapter.title_en and chapter.sections, chapter.slug
        assert len({s.order for s in chapter.sections}) == len(chapter.sections)
        for section in chapter.sections:
            assert SLUG.match(section.slug) and section.title_en, section.slug
            assert len(section.text.split()) >= 15, section.slug


def test_handbook_loads_into_the_hubs_structure(handbook):
    structure = HandbookStructure.from_json(handbook.structure_json())
    chapters = structure.chapters()
    assert [c.section.slug for c in chapters] == [c.slug for c in handbook.chapters]
    assert [s.slug for c in chapters for s in c.sections] == [s.slug for s in handbook.sections()]
    assert structure.get("e-akte").parent == "technik"
    assert structure.get("vorwort").text.startswith("Acht Kommunen")


def test_every_topic_and_contribution_triages_into_a_section(all_files, handbook, scheme_topics):
    for f in all_files:
        assert handbook.sections_for_topics(f.topics), f.path
    for topic in scheme_topics:
        assert handbook.sections_for_topics([topic]), f"no section takes topic {topic}"
    assert [s.slug for s in handbook.sections_for_topics(["e-payment"])] == [
        "appetit-buergerservice",
        "e-payment",
    ]


# --- the loader's errors -----------------------------------------------------------


def write(tmp_path, text, name="x.md"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("kind: practice\nslug: a\n", "(front matter)"),
        ("---\nkind: practice\nslug: a\n", "(front matter)"),
        ("---\nkind: [unclosed\n---\nbody", "(front matter)"),
        ("---\n- a\n- b\n---\nbody", "(front matter)"),
        ("---\nkind: recipe\nslug: a\n---\nbody", "kind"),
        ("---\nkind: practice\nslug: 12\n---\nbody", "slug"),
    ],
)
def test_malformed_front_matter_names_the_field(tmp_path, text, field):
    path = write(tmp_path, text)
    with pytest.raises(ExampleContentError) as info:
        parse_example_file(path)
    assert info.value.field == field and info.value.path == path


def test_front_matter_and_body_are_split(tmp_path):
    path = write(tmp_path, "---\nkind: comment\nslug: a\nabout: 'hub:x'\n---\n\nText --- hier.\n")
    parsed = parse_example_file(path)
    assert parsed.front_matter == {"kind": "comment", "slug": "a", "about": "hub:x"}
    assert parsed.body == "Text --- hier.\n"


def test_unknown_node_folder_is_a_typed_error(tmp_path):
    with pytest.raises(ExampleContentError) as info:
        load_contributions("nirgendwo", root=tmp_path)
    assert info.value.field == "slug"


def test_bad_nodes_and_handbook_files_are_typed_errors(tmp_path):
    nodes = write(
        tmp_path,
        '[[nodes]]\nslug = "a"\nname = "A"\nkind = "town"\ndescription = "x"\n',
        "nodes.toml",
    )
    with pytest.raises(ExampleContentError) as info:
        load_nodes(nodes)
    assert info.value.field == "kind"
    handbook = write(
        tmp_path,
        "title: {de: T, en: T}\nchapters:\n  - slug: a\n"
        "    order: first\n    title: {de: A, en: A}\n",
        "handbook.yaml",
    )
    with pytest.raises(ExampleContentError) as info:
        load_handbook(handbook)
    assert info.value.field == "chapter a.order"
