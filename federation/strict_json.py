"""JSON as RFC 8259 writes it: what Python's ``json`` parser takes beyond it is refused.

``json.loads`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, and turns a number beyond
a double's range (``1e400``) into infinity; ``json.dumps`` then writes ``Infinity``,
which is not JSON: PostgreSQL's ``json`` type refuses it, so a received document holding
one could never be stored (a 503 and the sender's retries, for ever). Every parser of
JSON from outside (remote documents, the API's bodies) passes these two hooks, so such
a document is refused where it arrives.
"""

from __future__ import annotations

import math


def not_a_json_constant(name: str) -> object:
    """``parse_constant``: NaN and (-)Infinity are not JSON values."""
    raise ValueError(f"{name} is not a JSON value")


def finite_float(text: str) -> float:
    """``parse_float``: the number as a float, refused when it is beyond a double's range
    (called only for numbers with a fraction or an exponent: few in an activity)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is beyond the range of a double")
    return value
