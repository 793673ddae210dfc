"""Files written whole or not at all: write, fsync, rename, fsync the directory.

For what must survive a crash or a power cut as one piece: the node's key files
(``node.identity``) and a hub's search snapshot (``node.hub.search_snapshot``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, data: bytes, *, owner_of: Path | None = None) -> None:
    """Write ``data`` to ``path`` by write, fsync and rename: a reader sees all of it or none
    (``atomic_file``)."""
    with atomic_file(path, owner_of=owner_of) as handle:
        handle.write(data)


@contextmanager
def atomic_file(path: Path, *, owner_of: Path | None = None) -> Iterator[BinaryIO]:
    """A file written in the block, then synced and renamed to ``path``: a reader sees all
    of it or none, and an error in the block leaves ``path`` as it was.

    The temporary file is created 0600 (a private key is never readable by others) and
    exclusively (two concurrent rotations do not write into one file). Run as root, the
    new file gets the owner of ``owner_of`` (default: the file it replaces), so the
    service user can still read it.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    replaced = stat_or_none(owner_of or path)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if replaced is not None and os.geteuid() == 0:
            os.fchown(fd, replaced.st_uid, replaced.st_gid)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    # the rename itself survives a crash only once the directory is on disk too
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None
