"""Loader for the example content: the model municipalities, their contributions, the handbook.

Pure file reading (tomllib, PyYAML); nothing here imports the node, so the demo, the tests
and any script can read the examples without starting anything.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

EXAMPLES_DIR = Path(__file__).resolve().parent
MUNICIPALITIES_DIR = EXAMPLES_DIR / "municipalities"
NODES_FILE = MUNICIPALITIES_DIR / "nodes.toml"
HANDBOOK_FILE = EXAMPLES_DIR / "hub" / "handbook.yaml"

NODE_KINDS = ("city", "district", "association", "hub")
CONTRIBUTION_KINDS = ("practice", "experience", "stance", "material", "comment")
# How `about` references spell a kind: node:<slug>/<plural>/<object-slug>.
KIND_PLURALS = {
    "practice": "practices",
    "experience": "experiences",
    "stance": "stances",
    "material": "materials",
    "comment": "comments",
}
FRONT_MATTER_FENCE = "---"
MEDIA_TYPES = {".txt": "text/plain", ".md": "text/markdown", ".pdf": "application/pdf"}
NODE_REFERENCE = re.compile(r"^node:(?P<node>[a-z0-9-]+)/(?P<plural>[a-z]+)/(?P<slug>[a-z0-9-]+)$")
HUB_REFERENCE = re.compile(r"^hub:(?P<section>[a-z0-9-]+)$")


class ExampleContentError(ValueError):
    """An example file is malformed; names the file and the field."""

    def __init__(self, path: Path, field: str, message: str) -> None:
        super().__init__(f"{path}: {field}: {message}")
        self.path = path
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ExampleNode:
    """One example node: a model municipality or the hub."""

    slug: str
    name: str
    kind: str
    state: str | None
    ags: str | None
    ags_form: str | None
    description: str
    members: tuple[str, ...] = ()

    @property
    def is_hub(self) -> bool:
        return self.kind == "hub"


@dataclass(frozen=True)
class ExampleFile:
    """One contribution: a Markdown file with YAML front matter."""

    path: Path
    front_matter: dict[str, object]
    body: str

    @property
    def kind(self) -> str:
        return str(self.front_matter["kind"])

    @property
    def slug(self) -> str:
        return str(self.front_matter["slug"])

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(str(t) for t in _as_list(self.front_matter.get("topics")))

    @property
    def about(self) -> str | None:
        value = self.front_matter.get("about")
        return None if value is None else str(value)

    @property
    def material_path(self) -> Path | None:
        """The attached file of a material, beside the Markdown file."""
        name = self.front_matter.get("file")
        return None if name is None else self.path.parent / str(name)


@dataclass(frozen=True)
class Reference:
    """A parsed `about`: another node's object, or (node is None) a handbook section."""

    node: str | None
    plural: str | None
    slug: str

    @property
    def is_section(self) -> bool:
        return self.node is None


@dataclass(frozen=True)
class Section:
    slug: str
    title_de: str
    title_en: str
    order: int
    text: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Chapter:
    slug: str
    title_de: str
    title_en: str
    order: int
    text: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Handbook:
    title_de: str
    title_en: str
    text: str
    chapters: tuple[Chapter, ...]

    def sections(self) -> Iterator[Section]:
        for chapter in self.chapters:
            yield from chapter.sections

    def section(self, slug: str) -> Section | None:
        return next((s for s in self.sections() if s.slug == slug), None)

    def sections_for_topics(self, topics: Iterable[str]) -> list[Section]:
        """Sections that usually take a contribution with these topics (for triage)."""
        wanted = set(topics)
        return [s for s in self.sections() if wanted.intersection(s.topics)]

    def structure_json(self) -> list[dict[str, object]]:
        """Chapters and sections as flat records with a parent, in reading order.

        The hub's interchange form (`HandbookStructure.from_json`): a chapter is a
        section without a parent.
        """
        records: list[dict[str, object]] = []
        for chapter in self.chapters:
            records.append(
                _record(
                    chapter.slug,
                    chapter.title_de,
                    chapter.title_en,
                    chapter.order,
                    None,
                    chapter.text,
                )
            )
            records.extend(
                _record(s.slug, s.title_de, s.title_en, s.order, chapter.slug, s.text)
                for s in chapter.sections
            )
        return records


def _record(
    slug: str, title_de: str, title_en: str, order: int, parent: str | None, text: str
) -> dict[str, object]:
    return {"slug": slug, "title_de": title_de, "title_en": title_en, "order": order,
            "parent": parent, "text": text}  # fmt: skip


def load_nodes(path: Path = NODES_FILE) -> list[ExampleNode]:
    """The model municipalities and the hub, in file order."""
    with path.open("rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ExampleContentError(path, "(file)", f"not valid TOML: {exc}") from exc
    entries = data.get("nodes")
    if not isinstance(entries, list):
        raise ExampleContentError(path, "nodes", "expected a list of [[nodes]] tables")
    return [_node_from_table(path, entry) for entry in entries]


def _node_from_table(path: Path, entry: dict[str, object]) -> ExampleNode:
    for field in ("slug", "name", "kind", "description"):
        if not isinstance(entry.get(field), str) or not entry[field]:
            raise ExampleContentError(path, field, "missing or not a string")
    kind = str(entry["kind"])
    if kind not in NODE_KINDS:
        raise ExampleContentError(path, "kind", f"{kind!r} is not one of {NODE_KINDS}")
    return ExampleNode(
        slug=str(entry["slug"]),
        name=str(entry["name"]),
        kind=kind,
        state=_optional_str(entry.get("state")),
        ags=_optional_str(entry.get("ags")),
        ags_form=_optional_str(entry.get("ags_form")),
        description=str(entry["description"]).strip(),
        members=tuple(str(m) for m in _as_list(entry.get("members"))),
    )


def load_contributions(slug: str, root: Path = MUNICIPALITIES_DIR) -> list[ExampleFile]:
    """All Markdown contributions of one node, sorted by file name."""
    folder = root / slug
    if not folder.is_dir():
        raise ExampleContentError(folder, "slug", f"no example folder for node {slug!r}")
    return [parse_example_file(p) for p in sorted(folder.glob("*.md"))]


def parse_example_file(path: Path) -> ExampleFile:
    """Split a Markdown file into its YAML front matter and its body."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        raise ExampleContentError(path, "(front matter)", "file must start with '---'")
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == FRONT_MATTER_FENCE)
    except StopIteration:
        raise ExampleContentError(path, "(front matter)", "closing '---' missing") from None
    try:
        front = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as exc:
        raise ExampleContentError(path, "(front matter)", f"not valid YAML: {exc}") from exc
    if not isinstance(front, dict):
        raise ExampleContentError(path, "(front matter)", "expected a mapping of fields")
    kind = front.get("kind")
    if kind not in CONTRIBUTION_KINDS:
        raise ExampleContentError(path, "kind", f"{kind!r} is not one of {CONTRIBUTION_KINDS}")
    if not isinstance(front.get("slug"), str):
        raise ExampleContentError(path, "slug", "missing or not a string")
    body = "\n".join(lines[end + 1 :]).strip() + "\n"
    return ExampleFile(path=path, front_matter=front, body=body)


def parse_reference(value: str) -> Reference:
    """`node:<slug>/<kind-plural>/<object-slug>` or `hub:<section-slug>`; ValueError otherwise."""
    if match := NODE_REFERENCE.match(value):
        if match["plural"] not in KIND_PLURALS.values():
            raise ValueError(f"about: {match['plural']!r} is not a kind ({value!r})")
        return Reference(node=match["node"], plural=match["plural"], slug=match["slug"])
    if match := HUB_REFERENCE.match(value):
        return Reference(node=None, plural=None, slug=match["section"])
    raise ValueError(f"about: expected node:<slug>/<kind>/<slug> or hub:<section>, got {value!r}")


def publish_fields(
    example: ExampleFile,
    resolve: Callable[[Reference], str],
    file_url: Callable[[Path], str] | None = None,
) -> dict[str, object]:
    """The front matter as the node's publish input reads it today.

    `about` becomes the URL that `resolve` gives. `lessons` (a list here) becomes one
    Markdown list, because the node stores lessons as one text. A material's `file`
    becomes `url` (wherever the caller serves the file, via `file_url`) and `media_type`.
    """
    fields = {k: v for k, v in example.front_matter.items() if k != "file"}
    if example.about is not None:
        fields["about"] = resolve(parse_reference(example.about))
    lessons = fields.get("lessons")
    if isinstance(lessons, list):
        fields["lessons"] = "\n".join(f"- {lesson}" for lesson in lessons)
    attachment = example.material_path
    if attachment is not None:
        if file_url is None:
            raise ExampleContentError(example.path, "file", "a material needs file_url")
        fields["url"] = file_url(attachment)
        fields["media_type"] = MEDIA_TYPES.get(attachment.suffix, "application/octet-stream")
    return fields


def render_for_publish(
    example: ExampleFile,
    resolve: Callable[[Reference], str],
    file_url: Callable[[Path], str] | None = None,
) -> str:
    """A Markdown file with front matter that `praxisnetz publish` accepts."""
    fields = publish_fields(example, resolve, file_url)
    front = yaml.safe_dump(fields, allow_unicode=True, sort_keys=False, width=1000)
    return f"{FRONT_MATTER_FENCE}\n{front}{FRONT_MATTER_FENCE}\n\n{example.body}"


def load_handbook(path: Path = HANDBOOK_FILE) -> Handbook:
    """The hub's handbook structure: chapters, sections, editorial texts, topics."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ExampleContentError(path, "(file)", f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("chapters"), list):
        raise ExampleContentError(path, "chapters", "expected a list of chapters")
    title = _title(path, "handbook", data)
    chapters = tuple(_chapter(path, entry) for entry in data["chapters"])
    return Handbook(
        title_de=title[0],
        title_en=title[1],
        text=str(data.get("text", "")).strip(),
        chapters=tuple(sorted(chapters, key=lambda c: c.order)),
    )


def _chapter(path: Path, entry: object) -> Chapter:
    if not isinstance(entry, dict):
        raise ExampleContentError(path, "chapters", "each chapter must be a mapping")
    slug = _required_str(path, "chapter.slug", entry.get("slug"))
    sections = tuple(_section(path, slug, s) for s in _as_list(entry.get("sections")))
    title = _title(path, f"chapter {slug}", entry)
    return Chapter(
        slug=slug,
        title_de=title[0],
        title_en=title[1],
        order=_order(path, f"chapter {slug}", entry),
        text=str(entry.get("text", "")).strip(),
        sections=tuple(sorted(sections, key=lambda s: s.order)),
    )


def _section(path: Path, chapter: str, entry: object) -> Section:
    if not isinstance(entry, dict):
        raise ExampleContentError(path, f"chapter {chapter}.sections", "must be mappings")
    slug = _required_str(path, f"chapter {chapter}.section.slug", entry.get("slug"))
    where = f"section {slug}"
    title = _title(path, where, entry)
    return Section(
        slug=slug,
        title_de=title[0],
        title_en=title[1],
        order=_order(path, where, entry),
        text=_required_str(path, f"{where}.text", entry.get("text")).strip(),
        topics=tuple(str(t) for t in _as_list(entry.get("topics"))),
    )


def _title(path: Path, where: str, entry: dict[str, object]) -> tuple[str, str]:
    title = entry.get("title")
    if not isinstance(title, dict):
        raise ExampleContentError(path, f"{where}.title", "expected {de: ..., en: ...}")
    return (
        _required_str(path, f"{where}.title.de", title.get("de")),
        _required_str(path, f"{where}.title.en", title.get("en")),
    )


def _order(path: Path, where: str, entry: dict[str, object]) -> int:
    order = entry.get("order")
    if not isinstance(order, int) or isinstance(order, bool):
        raise ExampleContentError(path, f"{where}.order", "expected an integer")
    return order


def _required_str(path: Path, field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ExampleContentError(path, field, "missing or not a string")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]
