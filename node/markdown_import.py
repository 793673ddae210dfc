"""Markdown files with YAML front matter, as ``praxisnetz publish`` reads them.

Every file is checked before anything is published; problems are reported per
file and field so an author can fix them all in one go.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from node.contribution_input import (
    ContributionInput,
    ContributionInputError,
    FieldProblem,
    parse_contribution_input,
)

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
MAX_FILE_BYTES = 512 * 1024
_UMLAUTS = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe", "Ü": "ue"}
)


@dataclass(frozen=True)
class FileProblem:
    path: Path
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"


class MarkdownImportError(ValueError):
    def __init__(self, problems: Iterable[FileProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class MarkdownContribution:
    path: Path
    contribution: ContributionInput


def slug_from_file_name(path: Path) -> str:
    """``E-Akte im Bauamt.md`` → ``e-akte-im-bauamt``."""
    text = unicodedata.normalize("NFKD", path.stem.translate(_UMLAUTS))
    ascii_text = text.encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:100].strip("-")


def split_front_matter(text: str) -> tuple[dict[str, object], str]:
    """The front matter mapping and the Markdown body; raises naming ``front_matter``."""
    text = text.lstrip("\ufeff")  # a BOM from Windows editors
    match = FRONT_MATTER.match(text)
    if match is None:
        raise ContributionInputError(
            [
                FieldProblem(
                    "front_matter", "the file must start with YAML front matter between --- lines"
                )
            ]
        )
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise ContributionInputError(
            [FieldProblem("front_matter", f"not valid YAML{where}")]
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ContributionInputError(
            [FieldProblem("front_matter", "must be a mapping of field: value")]
        )
    if "body" in data:
        raise ContributionInputError(
            [FieldProblem("body", "the body is the Markdown after the front matter")]
        )
    return data, text[match.end() :]


def parse_markdown(
    text: str, *, default_slug: str | None, known_topics: frozenset[str] | None
) -> ContributionInput:
    front_matter, body = split_front_matter(text)
    return parse_contribution_input(
        {**front_matter, "body": body.strip("\n")},
        default_slug=default_slug,
        known_topics=known_topics,
    )


def _read(path: Path) -> str:
    if not path.is_file():
        raise ContributionInputError([FieldProblem("file", "does not exist or is not a file")])
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ContributionInputError([FieldProblem("file", f"larger than {MAX_FILE_BYTES} bytes")])
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContributionInputError([FieldProblem("file", "is not UTF-8 text")]) from exc


def load_markdown_files(
    paths: Iterable[Path], *, known_topics: frozenset[str] | None
) -> list[MarkdownContribution]:
    """Parse every file; raise MarkdownImportError listing ALL problems of ALL files."""
    loaded: list[MarkdownContribution] = []
    problems: list[FileProblem] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            contribution = parse_markdown(
                _read(path),
                default_slug=slug_from_file_name(path) or None,
                known_topics=known_topics,
            )
        except ContributionInputError as exc:
            problems += [FileProblem(path, p.field, p.message) for p in exc.problems]
            continue
        if contribution.slug in seen:
            problems.append(
                FileProblem(
                    path, "slug", f"{contribution.slug!r} is also used by {seen[contribution.slug]}"
                )
            )
            continue
        seen[contribution.slug] = path
        loaded.append(MarkdownContribution(path, contribution))
    if problems:
        raise MarkdownImportError(problems)
    return loaded
