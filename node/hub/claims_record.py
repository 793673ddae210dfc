"""The files beside an on-disk hub index that keep its ``ForeignClaims``.

``<index>.claims.json`` is the record itself, replaced whole (by rename) after each
write that changes it. The store (Oxigraph's RocksDB) and the record are written one
after the other, so a crash between the two leaves the record a write behind, and
replaying that write does not heal it: the statement about another node that the store
kept without a claim is taken for its subject's own description and stays for good.
So ``<index>.claims.writing`` marks a write under way: made before the store is touched,
removed once the record matches it again. Found when the index is opened, it makes the
record incomplete, and the hub rebuilds the index at its start (``Aggregator.start``),
as for an index without a record at all. (Not synced to disk: a power cut may lose the
store's last writes as well, and the rebuild from SQL is what makes both whole then.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from node.hub.jsonld_quads import ForeignClaims

log = logging.getLogger("praxisnetz.hub.index")


class ClaimsRecord:
    def __init__(self, index_path: Path) -> None:
        self.path = index_path.with_name(index_path.name + ".claims.json")
        self.marker = index_path.with_name(index_path.name + ".claims.writing")

    def load(self, *, empty_store: bool) -> ForeignClaims:
        claims = ForeignClaims.load(self.path, empty_store=empty_store)
        if claims.complete and self.marker.exists():
            log.warning("index %s: a write was under way when the hub stopped; its record of "
                        "statements about other nodes may be a write behind", self.path)
            claims.complete = False
        return claims

    def save(self, claims: ForeignClaims) -> None:
        claims.save(self.path)

    @contextlib.contextmanager
    def writing(self, claims: ForeignClaims) -> Iterator[None]:
        """The marker around a write. It stays while the record is incomplete, until a
        rebuild; a write that fails makes the record incomplete (it may not match the
        store then), so no later write of this process removes the marker either."""
        self.marker.touch()
        try:
            yield
        except BaseException:
            claims.complete = False
            raise
        if claims.complete:
            self.marker.unlink(missing_ok=True)

    def settled(self) -> None:
        """A rebuild made the record whole: no earlier write is in doubt any more."""
        self.marker.unlink(missing_ok=True)


class NoRecord(ClaimsRecord):
    """An index in memory: its claims live and die with it, nothing is written."""

    def __init__(self) -> None:
        pass

    def load(self, *, empty_store: bool) -> ForeignClaims:
        return ForeignClaims()

    def save(self, claims: ForeignClaims) -> None:
        pass

    @contextlib.contextmanager
    def writing(self, claims: ForeignClaims) -> Iterator[None]:
        yield

    def settled(self) -> None:
        pass
