"""The vocabulary's precompiled data: the parsed shapes and the term table of our contexts.

Validation needs the shapes of `shapes.ttl` and, for the fast path, the term table of
the context list our documents carry. Making them needs rdflib (Turtle) and pyld (context
processing), about 19 MiB and 0.3 s of imports for a node that only wants to validate
what it publishes. So they are made once, by

    python -m vocab.compiled

which writes `vocab/precompiled/shapes.json` and `vocab/precompiled/context-tables.json`;
a node reads those with `json`. `shapes.ttl` and the bundled contexts stay the single
source: a test fails when a shipped file differs from a fresh compile.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from vocab.context_table import NotOnFastPath, TermTable, table_from_json, table_to_json
from vocab.known_triples import KnownContextTriples, context_key
from vocab.loader import DEFAULT_CONTEXT, load_bundled_document
from vocab.shacl import ShapeSet
from vocab.shapes_json import shape_set_from_json, shape_set_to_json

SHAPES_FILE = "precompiled/shapes.json"
TABLES_FILE = "precompiled/context-tables.json"
# The @context values that get a table: the list our own documents carry.
TABLE_CONTEXTS: tuple[list[str], ...] = (list(DEFAULT_CONTEXT),)

_ABSOLUTE_IRI = re.compile(r"https?://\S+")
_LANGUAGE_TAG = re.compile(r"[a-z]{1,8}(-[a-z0-9]{1,8})*")


def _read(name: str) -> Any:
    return json.loads(resources.files("vocab").joinpath(name).read_text(encoding="utf-8"))


def load_shapes() -> ShapeSet:
    return shape_set_from_json(_read(SHAPES_FILE))


def load_context_tables() -> dict[str, TermTable]:
    """context_key of the ``@context`` value -> its term table."""
    return {
        context_key(entry["context"]): table_from_json(entry["table"])
        for entry in _read(TABLES_FILE)["contexts"]
    }


@cache
def known_context_triples() -> KnownContextTriples:
    """The validator's fast path over the shipped tables (read once per process)."""
    return KnownContextTriples(load_context_tables())


def _checked(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise NotOnFastPath(f"the context maps to an unusable {what} {value!r}")
        return value

    return check


def fresh_texts() -> dict[str, str]:
    """The compiled files as they would be written now (imports rdflib and pyld)."""
    from rdflib import Graph

    from vocab.context_table import build_table

    turtle = resources.files("vocab").joinpath("shapes.ttl").read_text(encoding="utf-8")
    shapes = ShapeSet.from_graph(Graph().parse(data=turtle, format="turtle"))
    check_iri, check_language = _checked(_ABSOLUTE_IRI, "IRI"), _checked(_LANGUAGE_TAG, "tag")
    tables = [
        {
            "context": context,
            "table": table_to_json(
                build_table(context, load_bundled_document, check_iri=check_iri,
                            check_language=check_language)
            ),
        }
        for context in TABLE_CONTEXTS
    ]  # fmt: skip
    return {
        SHAPES_FILE: _dumps(shape_set_to_json(shapes)),
        TABLES_FILE: _dumps({"contexts": tables}),
    }


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the compiled files next to this module."""
    del argv  # no options
    root = Path(__file__).resolve().parent
    for name, text in fresh_texts().items():
        path = root / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path} ({len(text):,} characters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
