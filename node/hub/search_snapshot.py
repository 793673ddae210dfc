"""The search as a file, written at a hub's clean stop and read at its next start.

A SQLite hub keeps its search in memory (``MemorySearch``) and used to fill it from SQL at
every start: 22–26 s for 231,000 documents, with search answering 503 meanwhile
(docs/performance.md). At a clean stop it now writes the index to ``DATA_DIR/
search-snapshot`` (``MemorySnapshot``), and the next start reads it back (about a tenth
of that) when it is still the search's state. PostgreSQL's search is its table
(``PostgresSearch``), which a start compared with SQL row by row (as long again, while
it answered); there the file holds only the stamp below and the table's row count
(``TableStamp``), and a start that finds them as they were compares nothing. Either is
used only where it is:

- **written by this code**: a marker over the snapshot format, the search's kind, the
  Python version (the ``marshal`` format is Python's own) and the source of the modules
  that decide what the search holds (``search``, ``compounds``, ``contribution``,
  ``search_backends``), so an upgrade fills from SQL;
- **whole**: each record carries its length and a CRC-32, and an end record counts them;
  a file cut short or damaged is not used;
- **where the index is** (the process that holds the RDF index): the snapshot's watermark
  is the SQL watermark, and its members are the ones the index holds. Then the sync after
  the start reads what changed since the watermark, as it does for the RDF index on disk.
  A hub that ran on after the snapshot was read and stopped without writing one (killed,
  or stopped while filling) has moved its watermark, so the file is not used again.
  A process without the RDF index (a second ``serve`` of the same data directory finds
  it held) keeps its own watermark: it takes the snapshot's and syncs from there.

Anything else, and the start fills from SQL as before. The file is ours alone (it lies
beside the database and the keys): ``marshal`` is not meant for data from elsewhere.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import marshal
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import BinaryIO

from node.atomic_files import atomic_file
from node.hub import compounds, contribution, search, search_backends
from node.hub.search import SearchIndex, SearchPage
from node.hub.search_backends import MemorySearch, PostgresSearch, SearchBackend

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
    OTHER_ROWS = "the search's table holds other rows than when it was written"


class SnapshotKind(enum.Enum):
    MEMORY = "memory"  # the in-memory index, page by page
    TABLE = "table"  # PostgreSQL's table is the search: the file holds only the stamp


@dataclass(frozen=True)
class SnapshotStamp:
    """Which state of the hub the snapshot's search belongs to."""

    watermark: datetime | None  # hub_index_state.synced_until when it was written
    members: frozenset[str]  # the members the RDF index held
    contributions: int  # the search held (the index's length, the table's rows)


@dataclass(frozen=True)
class SnapshotReading:
    verdict: SnapshotVerdict
    stamp: SnapshotStamp | None = None
    contributions: int = 0


class SnapshotDamaged(Exception):
    """A record is cut short, fails its CRC, or is not what the format writes."""


@cache
def code_marker(kind: SnapshotKind = SnapshotKind.MEMORY) -> str:
    """Names the code that decides what the search holds, and how the file is written."""
    digest = hashlib.sha256(repr((SNAPSHOT_FORMAT, kind.value, sys.version_info[:2],
                                  marshal.version, search.PAGE_ROWS)).encode())
    for module in (search, compounds, contribution, search_backends):
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


def write_snapshot(path: Path, stamp: SnapshotStamp, pages: Iterable[SearchPage] = (), *,
                   marker: str | None = None) -> int:
    """Write the stamp and ``pages`` (``SearchIndex.pages``; none for a table) to ``path``
    (``atomic_file``: a stop cut short leaves the file before it or none); the number of
    pages."""
    header = {"marker": marker or code_marker(),
              "watermark": stamp.watermark.isoformat() if stamp.watermark else None,
              "members": sorted(stamp.members), "contributions": stamp.contributions}
    written = 0
    with atomic_file(path) as out:
        out.write(_MAGIC)
        _write_record(out, header)
        for page in pages:
            _write_record(out, (page.kind, page.content))
            written += 1
            time.sleep(0)  # the event loop's turn between two pages
        _write_record(out, (_END, written))
    return written


def read_snapshot(path: Path, accept: Callable[[SnapshotStamp], SnapshotVerdict], *,
                  marker: str | None = None) -> tuple[SnapshotReading, SearchIndex | None]:
    """The index of the pages in ``path`` if its stamp is one ``accept`` takes
    (``LOADED``; an empty index for a table's stamp), else why not, and no index."""
    try:
        with path.open("rb") as source:
            return _read(source, accept, marker or code_marker())
    except FileNotFoundError:
        return SnapshotReading(SnapshotVerdict.MISSING), None
    # unreadable too (a directory in its place, a disk error): the start fills from SQL,
    # where an error would stop the fill and every retry of it
    except (OSError, SnapshotDamaged, EOFError, ValueError, TypeError, KeyError) as exc:
        log.warning("hub search snapshot %s not used: %r", path, exc)
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
                          frozenset(header["members"]), header["contributions"])
    verdict = accept(stamp)
    if verdict is not SnapshotVerdict.LOADED:
        return SnapshotReading(verdict, stamp), None
    index, pages = SearchIndex(), 0
    for kind, content in records:
        if kind == _END:
            if content != pages or (pages and len(index) != stamp.contributions):
                raise SnapshotDamaged(f"{pages} pages read, the end record says {content}")
            return SnapshotReading(verdict, stamp, stamp.contributions), index
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


class MemorySnapshot:
    """The snapshot file of one process's ``MemorySearch``: its index, page by page."""

    def __init__(self, path: Path, search: MemorySearch) -> None:
        self.path = path
        self._search = search

    async def restore(self, accept: Callable[[SnapshotStamp], SnapshotVerdict]
                      ) -> SnapshotReading:
        """Read the file on a thread; if ``accept`` takes its stamp, the search holds
        what it holds from now on."""
        reading, index = await asyncio.to_thread(read_snapshot, self.path, accept,
                                                 marker=code_marker(SnapshotKind.MEMORY))
        if index is not None:
            self._search.index = index
        return reading

    async def save(self, watermark: datetime | None, members: frozenset[str]) -> int:
        """Write what the search holds now (nothing may change it meanwhile: the hub is
        stopping); the number of pages."""
        index = self._search.index
        stamp = SnapshotStamp(watermark, members, len(index))
        return await asyncio.to_thread(write_snapshot, self.path, stamp, index.pages(),
                                       marker=code_marker(SnapshotKind.MEMORY))


class TableStamp:
    """The stamp of PostgreSQL's search table at a clean stop: the table itself is the
    search, so a start that finds the stamp and the table's row count as they were needs
    no comparison of the table with SQL."""

    def __init__(self, path: Path, search: PostgresSearch) -> None:
        self.path = path
        self._search = search

    async def restore(self, accept: Callable[[SnapshotStamp], SnapshotVerdict]
                      ) -> SnapshotReading:
        rows = await self._search.count()

        def accept_rows(stamp: SnapshotStamp) -> SnapshotVerdict:
            verdict = accept(stamp)
            if verdict is SnapshotVerdict.LOADED and stamp.contributions != rows:
                return SnapshotVerdict.OTHER_ROWS  # emptied or changed by hand meanwhile
            return verdict

        reading, _ = await asyncio.to_thread(read_snapshot, self.path, accept_rows,
                                             marker=code_marker(SnapshotKind.TABLE))
        return reading

    async def save(self, watermark: datetime | None, members: frozenset[str]) -> int:
        stamp = SnapshotStamp(watermark, members, await self._search.count())
        return await asyncio.to_thread(write_snapshot, self.path, stamp,
                                       marker=code_marker(SnapshotKind.TABLE))


SearchSnapshot = MemorySnapshot | TableStamp


def snapshot_for(path: Path, search: SearchBackend) -> SearchSnapshot | None:
    """The snapshot of the hub's search backend, kept at ``path``."""
    if isinstance(search, MemorySearch):
        return MemorySnapshot(path, search)
    if isinstance(search, PostgresSearch):
        return TableStamp(path, search)
    return None
