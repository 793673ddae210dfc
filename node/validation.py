"""The vocabulary's checks as the authoring code needs them: field problems and topic slugs."""

from __future__ import annotations

from typing import Any

from node.contribution_input import FieldProblem

# Why the vocab imports are in the functions: validation reads the compiled shapes and the
# term table (and pyld/rdflib for documents outside our contexts), which a node needs only
# when something is published, not to start.


def known_topic_slugs() -> frozenset[str]:
    """Topic slugs of the SKOS scheme shipped in ``vocab/topics.ttl``."""
    from vocab.topic_slugs import TOPIC_SLUGS

    return frozenset(TOPIC_SLUGS)


def document_problems(document: dict[str, Any]) -> list[FieldProblem]:
    """SHACL validation of an (unsigned) contribution, as problems naming document members."""
    from vocab.validate import Severity, validate

    report = validate(document, document.get("id"))
    if report.valid:
        return []
    return [
        FieldProblem(problem.field, problem.message_en)
        for problem in report.problems
        if problem.severity is Severity.VIOLATION
    ]
