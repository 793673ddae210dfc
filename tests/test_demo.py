"""The README's main job: `praxisnetz demo --check` runs the whole local federation story."""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

NODES = 9  # the hub and the eight model municipalities


def _ephemeral_ports() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as ranges:
            low, high = (int(part) for part in ranges.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return low, high


def _free_port_range(count: int) -> int:
    """A base port whose next ``count`` ports are all free on 127.0.0.1."""
    # Random candidates: two test runs on one machine must not pick the same range.
    # Below the kernel's ephemeral ports (32768–60999 here): a range picked there could be
    # taken by an outgoing connection before the demo binds it (CI saw EADDRINUSE).
    low, _ = _ephemeral_ports()
    upper = low - count if low - count > 22000 else 60000  # an odd range: as before
    for base in random.sample(range(20000, upper, 10), 200):
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sockets.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port range")


def _run_demo(data_dir, base_port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-c", "import sys; from node.cli import main; sys.exit(main())",
        "demo", "--check", "--data-dir", str(data_dir), "--base-port", str(base_port),
        "--timeout", "150", *extra,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=420)


def _run_demo_until_welcome(data_dir, base_port: int) -> subprocess.CompletedProcess[str]:
    """Run the interactive demo, wait for its welcome text, then press Ctrl-C."""
    command = [
        sys.executable, "-c", "import sys; from node.cli import main; sys.exit(main())",
        "demo", "--data-dir", str(data_dir), "--base-port", str(base_port), "--timeout", "150",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 420
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, "".join(lines) + rest, "")


def _assert_ports_free(base_port: int) -> None:
    """Every node was stopped: all ports are free again."""
    for port in range(base_port, base_port + NODES):
        with socket.socket() as sock:
            # SO_REUSEADDR: connections in TIME_WAIT are fine, a listener still there is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_check_federates_the_example_content_and_can_run_again(tmp_path) -> None:
    base_port = _free_port_range(NODES)
    first = _run_demo(tmp_path / "demo", base_port, "--reset")
    assert first.returncode == 0, first.stdout + first.stderr
    summary = re.search(r"(\d+) of (\d+) checks passed, (\d+) contributions", first.stdout)
    assert summary, first.stdout
    passed, total, contributions = map(int, summary.groups())
    assert passed == total >= 10
    assert contributions >= 50
    for step in ("every contribution arrived at the hub", "edition 1 frozen",
                 "every contribution's proof verify", "the edition's PDF exists",
                 "received its announcement"):  # fmt: skip
        assert any(line.startswith("  [ok ]") and step in line for line in first.stdout.splitlines()), step
    _assert_ports_free(base_port)
    # A second run reuses the data folder and stays up as `make demo` does, until Ctrl-C.
    second = _run_demo_until_welcome(tmp_path / "demo", base_port)
    (tmp_path / "second-run.txt").write_text(second.stdout)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "Creating 9 nodes" in second.stdout
    assert re.search(r"(\d+) of \1 checks passed", second.stdout), second.stdout
    assert f"http://127.0.0.1:{base_port}/signin" in second.stdout
    assert re.search(r"/handbook/editions/\d+\.pdf", second.stdout), second.stdout
    assert "Stopping" in second.stdout
    _assert_ports_free(base_port)
