"""Two key rotations at once: ``rotation_lock`` (an exclusive flock on keys/rotate.lock)
lets one run and refuses the other at once with ``RotationBusy`` naming the lock, across
threads and across processes; a holder that dies (SIGKILL) leaves no stale lock.
Without it, racing Ed25519 rotations each wrote the versions file without the other's
key: a key file without a key id, or a version number given twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from node.identity import (
    KeyKind,
    RotationBusy,
    load_node_keys,
    rotate_node_key,
    rotation_lock,
)
from node.key_versions import read_versions, versions_path
from tests.engine_support import node_config

ROOT = Path(__file__).resolve().parent.parent


def test_racing_rotations_in_threads_keep_every_key_in_the_versions_file(tmp_path) -> None:
    config = node_config(tmp_path, "a")
    threads, rounds = 6, 8
    start = threading.Barrier(threads)
    done, refused, failed = [], [], []

    def rotate() -> None:
        start.wait()
        for _ in range(rounds):
            try:
                rotate_node_key(config, KeyKind.ED25519)
                done.append(1)
            except RotationBusy as exc:
                refused.append(exc)
            except Exception as exc:  # noqa: BLE001 - recorded for the assertion below
                failed.append(exc)

    workers = [threading.Thread(target=rotate) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failed == []
    assert len(done) + len(refused) == threads * rounds and done
    versions = read_versions(versions_path(config.keys_dir))
    numbers = [entry.version for entry in versions.entries]
    assert numbers == list(range(1, len(done) + 2))  # the first key and one per rotation
    keys = load_node_keys(config)  # the key file's key is listed, under the newest number
    assert keys.ed25519.key_id.endswith(f"#ed25519-key-{len(done) + 1}")
    assert all(str(config.keys_dir / "rotate.lock") in str(exc) for exc in refused)


_HOLDER = """
import sys, time
from node.config import load_config
from node.identity import rotation_lock
with rotation_lock(load_config(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""

_ROTATE = """
import sys
from node.config import load_config
from node.identity import KeyKind, RotationBusy, rotate_node_key
try:
    rotate_node_key(load_config(sys.argv[1]), KeyKind.ED25519)
except RotationBusy as exc:
    print(exc)
    sys.exit(3)
print("rotated")
"""


def _run(script: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, str(data_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_a_second_process_is_refused_while_one_rotates_and_not_after_it_died(
        tmp_path) -> None:
    config = node_config(tmp_path, "a")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(config.data_dir)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = config.ed25519_key_path.read_bytes()
        refused = _run(_ROTATE, config.data_dir)
        assert refused.returncode == 3, refused.stderr
        assert "another key rotation of this node is running" in refused.stdout
        assert str(config.keys_dir / "rotate.lock") in refused.stdout
        assert config.ed25519_key_path.read_bytes() == before  # nothing was written
        with pytest.raises(RotationBusy):  # a thread of this process is refused too
            with rotation_lock(config):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    rotated = _run(_ROTATE, config.data_dir)  # the kernel dropped the dead holder's lock
    assert rotated.returncode == 0 and rotated.stdout.strip() == "rotated", rotated.stderr
    assert config.ed25519_key_path.read_bytes() != before


def test_a_caller_holding_the_lock_rotates_under_it(tmp_path) -> None:
    """The command holds the lock for the whole rotation (files, wait, announcement) and
    hands it to ``rotate_node_key``, which then takes no second one."""
    config = node_config(tmp_path, "a")
    with rotation_lock(config) as held:
        rotate_node_key(config, KeyKind.RSA, lock=held)
        rotate_node_key(config, KeyKind.ED25519, lock=held)
        with pytest.raises(RotationBusy):
            rotate_node_key(config, KeyKind.RSA)
    rotate_node_key(config, KeyKind.RSA)


def test_the_command_refuses_while_another_rotation_holds_the_lock(tmp_path, capsys) -> None:
    from node.cli import main

    config = node_config(tmp_path, "a")
    before = config.rsa_key_path.read_bytes()
    with rotation_lock(config):
        assert main(["keys", "rotate", "--data-dir", str(config.data_dir)]) == 75
    assert "keys/rotate.lock" in capsys.readouterr().err
    assert config.rsa_key_path.read_bytes() == before
