"""The in-memory search as a file, written at a hub's clean stop and read at its next start.

A SQLite hub keeps its search in memory (``MemorySearch``) and used to fill it from SQL at
every start: 22–26 s for 231,000 documents, with search answering 503 meanwhile
(docs/performance.md). At a clean stop it now writes the index to ``DATA_DIR/
search-snapshot``, and the next start reads it back (about a tenth of that) when it is
still the search's state:

- **written by this code**: a marker over the snapshot format, the Python version (the
  ``marshal`` format is Python's own) and the source of the modules that decide what the
  index holds (``search``, ``compounds``, ``contribution``), so an upgrade fills from SQL;
- **whole**: each record carries its length and a CRC-32, and an end record counts them;
  a file cut short or damaged is not used;
- **where the index is** (the process that holds the RDF index): the snapshot's watermark
  is the SQL watermark, and its members are the ones the index holds. Then the sync after
  the start reads what changed since the watermark, as it does for the RDF index on disk.
  A hub that ran on after the snapshot was read and stopped without writing one (killed,
  or stopped while filling) has moved its watermark, so the file is not used again.
  A process without the RDF index (a second acceptor) keeps its own watermark: it takes
  the snapshot's and syncs from there.

Anything else, and the start fills from SQL as before. The file is ours alone (it lies
beside the database and the keys): ``marshal`` is not meant for data from elsewhere.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import marshal
import os
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import BinaryIO

from node.hub import compounds, contribution, search
from node.hub.search import SearchIndex, SearchPage
from node.hub.search_backends import MemorySearch

log = logging.getLogger("praxisnetz.hub")

SNAPSHOT_FILE = "search-snapshot"
SNAPSHOT_FORMAT = 1  # bump when the records change
_MAGIC = b"praxisnetz search snapshot\n"
_RECORD_HEAD = struct.Struct(">II")  # length, CRC-32 of the marshalled bytes
_END = "end"


class SnapshotVerdict(enum.Enum):
    LOADED = "loaded"
    MISSING = "no snapshot"
    OTHER_CODE = "written by other code"
    DAMAGED = "damaged or cut short"
    OTHER_WATERMARK = "the index was synced after it was written"
    OTHER_MEMBERS = "the index holds other members than when it was written"


@dataclass(frozen=True)
class SnapshotStamp:
    """Which state of the hub the snapshot's search belongs to."""

    watermark: datetime | None  # hub_index_state.synced_until when it was written
    members: frozenset[str]  # the members the RDF index held


@dataclass(frozen=True)
class SnapshotReading:
    verdict: SnapshotVerdict
    stamp: SnapshotStamp | None = None
    contributions: int = 0


class SnapshotDamaged(Exception):
    """A record is cut short, fails its CRC, or is not what the format writes."""


@cache
def code_marker() -> str:
    """Names the code that decides what the index holds, and how the file is written."""
    digest = hashlib.sha256(repr((SNAPSHOT_FORMAT, sys.version_info[:2], marshal.version,
                                  search.PAGE_ROWS)).encode())
    for module in (search, compounds, contribution):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


def accept_for(watermark: datetime | None, members: frozenset[str] | None
               ) -> Callable[[SnapshotStamp], SnapshotVerdict]:
    """What a process takes: the one that holds the RDF index, a snapshot of where the
    index is (its SQL ``watermark``, the ``members`` it holds); one without (``members``
    None) any snapshot of this code, and syncs from the snapshot's own watermark."""
    def accept(stamp: SnapshotStamp) -> SnapshotVerdict:
        if members is None:
            return SnapshotVerdict.LOADED
        if stamp.watermark != watermark:
            return SnapshotVerdict.OTHER_WATERMARK
        if stamp.members != members:
            return SnapshotVerdict.OTHER_MEMBERS
        return SnapshotVerdict.LOADED
    return accept


def write_snapshot(path: Path, index: SearchIndex, stamp: SnapshotStamp, *,
                   marker: str | None = None) -> int:
    """Write ``index`` to ``path`` (a temporary file beside it, synced, then renamed: a
    stop cut short leaves the file before it or none); the number of pages."""
    header = {"marker": marker or code_marker(),
              "watermark": stamp.watermark.isoformat() if stamp.watermark else None,
              "members": sorted(stamp.members), "contributions": len(index)}
    partial = path.with_name(path.name + ".partial")
    pages = 0
    try:
        with partial.open("wb") as out:
            out.write(_MAGIC)
            _write_record(out, header)
            for page in index.pages():
                _write_record(out, (page.kind, page.content))
                pages += 1
                time.sleep(0)  # the event loop's turn between two pages
            _write_record(out, (_END, pages))
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)
    return pages


def read_snapshot(path: Path, accept: Callable[[SnapshotStamp], SnapshotVerdict], *,
                  marker: str | None = None) -> tuple[SnapshotReading, SearchIndex | None]:
    """The index in ``path`` if its stamp is one ``accept`` takes (``LOADED``), else why
    not, and no index."""
    try:
        source = path.open("rb")
    except FileNotFoundError:
        return SnapshotReading(SnapshotVerdict.MISSING), None
    with source:
        try:
            return _read(source, accept, marker or code_marker())
        except (SnapshotDamaged, EOFError, ValueError, TypeError, KeyError) as exc:
            log.warning("hub search snapshot %s not used: %s", path, exc)
            return SnapshotReading(SnapshotVerdict.DAMAGED), None


def _read(source: BinaryIO, accept: Callable[[SnapshotStamp], SnapshotVerdict],
          marker: str) -> tuple[SnapshotReading, SearchIndex | None]:
    if source.read(len(_MAGIC)) != _MAGIC:
        raise SnapshotDamaged("not a search snapshot")
    records = _records(source)
    header = next(records, None)
    if header is None:
        raise SnapshotDamaged("no header")
    if not isinstance(header, dict) or header.get("marker") != marker:
        return SnapshotReading(SnapshotVerdict.OTHER_CODE), None
    watermark = header["watermark"]
    stamp = SnapshotStamp(datetime.fromisoformat(watermark) if watermark else None,
                          frozenset(header["members"]))
    verdict = accept(stamp)
    if verdict is not SnapshotVerdict.LOADED:
        return SnapshotReading(verdict, stamp), None
    index, pages = SearchIndex(), 0
    for kind, content in records:
        if kind == _END:
            if content != pages or len(index) != header["contributions"]:
                raise SnapshotDamaged(f"{pages} pages read, the end record says {content}")
            return SnapshotReading(verdict, stamp, len(index)), index
        index.restore(SearchPage(kind, content))
        pages += 1
        time.sleep(0)
    raise SnapshotDamaged("no end record")


def _write_record(out: BinaryIO, value: object) -> None:
    data = marshal.dumps(value, 4)
    out.write(_RECORD_HEAD.pack(len(data), zlib.crc32(data)))
    out.write(data)


def _records(source: BinaryIO) -> Iterator[object]:
    while head := source.read(_RECORD_HEAD.size):
        if len(head) < _RECORD_HEAD.size:
            raise SnapshotDamaged("a record's head is cut short")
        size, crc = _RECORD_HEAD.unpack(head)
        data = source.read(size)
        if len(data) < size or zlib.crc32(data) != crc:
            raise SnapshotDamaged("a record is cut short or damaged")
        yield marshal.loads(data)


def _sync_directory(directory: Path) -> None:
    """The rename itself survives a power cut once the directory is synced."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class SearchSnapshot:
    """The snapshot file of one process's ``MemorySearch``."""

    def __init__(self, path: Path, search: MemorySearch) -> None:
        self.path = path
        self._search = search

    async def restore(self, accept: Callable[[SnapshotStamp], SnapshotVerdict]
                      ) -> SnapshotReading:
        """Read the file on a thread; if ``accept`` takes its stamp, the search holds
        what it holds from now on."""
        reading, index = await asyncio.to_thread(read_snapshot, self.path, accept)
        if index is not None:
            self._search.index = index
        return reading

    async def save(self, stamp: SnapshotStamp) -> int:
        """Write what the search holds now (nothing may change it meanwhile: the hub is
        stopping); the number of pages."""
        return await asyncio.to_thread(write_snapshot, self.path, self._search.index, stamp)
