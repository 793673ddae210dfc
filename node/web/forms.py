"""The contribution form: which fields each kind shows, and form data ⇄ authoring input.

Checking is ``parse_contribution_input``'s: the form only turns text areas into lists
and leaves out the fields a kind does not have, so every problem names a form field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from multidict import MultiDictProxy

from node.contribution_input import (
    ContributionInput,
    ContributionInputError,
    FieldProblem,
    parse_contribution_input,
)
from node.storage.models import ContributionKind

COMMON = ("title", "slug", "summary", "body", "language")
KIND_FIELDS: Mapping[ContributionKind, tuple[str, ...]] = {
    ContributionKind.PRACTICE: (
        *COMMON, "status", "topics", "steps", "effort", "duration", "lessons", "legal_basis",
        "related_service",
    ),
    ContributionKind.EXPERIENCE: (
        *COMMON, "about", "topics", "effort", "duration", "lessons", "legal_basis",
        "related_service",
    ),
    ContributionKind.STANCE: ("about", "position", "reason", *COMMON),
    ContributionKind.COMMENT: ("about", *COMMON),
    ContributionKind.MATERIAL: (*COMMON, "about", "topics", "url", "media_type", "license"),
}  # fmt: skip
LINE_LIST_FIELDS = frozenset({"steps", "legal_basis"})
MULTI_FIELDS = frozenset({"topics"})
TEXTAREA_FIELDS = frozenset({"body", "summary", "steps", "legal_basis", "lessons", "reason"})
_UMLAUTS = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe", "Ü": "ue"}
)


@dataclass
class FormState:
    """A contribution form as shown: the values typed and the problems per field."""

    kind: ContributionKind
    values: dict[str, str | list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    other_errors: list[str] = field(default_factory=list)  # not tied to a shown field

    @property
    def fields(self) -> tuple[str, ...]:
        return KIND_FIELDS[self.kind]

    def text(self, name: str) -> str:
        value = self.values.get(name, "")
        return "\n".join(value) if isinstance(value, list) else value

    def chosen(self, name: str) -> list[str]:
        value = self.values.get(name, [])
        return value if isinstance(value, list) else [value]


def parse_kind(value: str | None) -> ContributionKind | None:
    try:
        return ContributionKind(value or "")
    except ValueError:
        return None


def slug_from_title(title: str) -> str | None:
    """``E-Akte im Bauamt`` → ``e-akte-im-bauamt`` (German letters spelled out)."""
    ascii_text = (
        unicodedata.normalize("NFKD", title.translate(_UMLAUTS))
        .encode("ascii", "ignore")
        .decode("ascii")
    )
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:80].strip("-")
    return slug or None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def form_values(kind: ContributionKind, form: MultiDictProxy) -> dict[str, str | list[str]]:
    """The kind's fields from submitted form data, as they are shown again."""
    values: dict[str, str | list[str]] = {}
    for name in KIND_FIELDS[kind]:
        if name in MULTI_FIELDS:
            values[name] = [v for v in form.getall(name, []) if isinstance(v, str) and v.strip()]
        else:
            raw = form.get(name, "")
            values[name] = raw if isinstance(raw, str) else ""
    return values


def values_from_source(source: Mapping[str, object]) -> dict[str, str | list[str]]:
    """What an author wrote earlier (``Contribution.source``), as form values."""
    values: dict[str, str | list[str]] = {}
    for name, value in source.items():
        if name in MULTI_FIELDS and isinstance(value, list):
            values[name] = [str(v) for v in value]
        elif isinstance(value, list):
            values[name] = "\n".join(str(v) for v in value)
        elif value is not None:
            values[name] = str(value)
    return values


def raw_input(kind: ContributionKind, values: Mapping[str, str | list[str]]) -> dict[str, object]:
    """Form values as ``parse_contribution_input`` expects them (empty fields left out)."""
    raw: dict[str, object] = {"kind": kind.value}
    for name in KIND_FIELDS[kind]:
        value = values.get(name)
        if name in MULTI_FIELDS and isinstance(value, list) and value:
            raw[name] = value
        elif name in LINE_LIST_FIELDS and isinstance(value, str) and value.strip():
            raw[name] = _lines(value)
        elif isinstance(value, str) and value.strip():
            raw[name] = value
    return raw


def attach_problems(state: FormState, problems: Sequence[FieldProblem]) -> None:
    for problem in problems:
        if problem.field in state.fields:
            state.errors.setdefault(problem.field, problem.message)
        else:
            state.other_errors.append(f"{problem.field}: {problem.message}")


def check_form(
    state: FormState, known_topics: frozenset[str], *, fixed_slug: str | None = None
) -> ContributionInput | None:
    """The checked input, or None with the problems attached to the state."""
    raw = raw_input(state.kind, state.values)
    if fixed_slug is not None:
        raw["slug"] = fixed_slug
    title = state.values.get("title")
    default_slug = slug_from_title(title) if isinstance(title, str) else None
    try:
        inp = parse_contribution_input(raw, default_slug=default_slug, known_topics=known_topics)
    except ContributionInputError as exc:
        attach_problems(state, exc.problems)
        return None
    if not state.values.get("slug"):
        state.values["slug"] = inp.slug  # keep the derived slug through preview and publish
    return inp
