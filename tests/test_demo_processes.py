"""How the demo waits for Ctrl-C: a signal sets a flag, it never raises inside Popen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from node.demo.processes import interrupt_flag, wait_until_stopped


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_ctrl_c_ends_the_wait_without_raising_and_the_nodes_can_still_be_reaped() -> None:
    # Python's own handler, or SIG_IGN where the test run was started in the background
    # by a shell without job control (POSIX: such a shell ignores SIGINT for it)
    handler_before = signal.getsignal(signal.SIGINT)
    node = _sleeper()
    try:
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        with interrupt_flag() as interrupted:
            wait_until_stopped([node], interrupted)  # a KeyboardInterrupt would fail the test
        assert interrupted.is_set
        assert node.poll() is None  # still running: the caller stops the nodes
    finally:
        node.kill()
        node.wait(timeout=10)  # and the process's lock was left free
    assert signal.getsignal(signal.SIGINT) is handler_before  # restored


def test_the_wait_ends_when_a_node_ends() -> None:
    quick = subprocess.Popen([sys.executable, "-c", "pass"])
    node = _sleeper()
    try:
        with interrupt_flag() as interrupted:
            wait_until_stopped([node, quick], interrupted)
        assert not interrupted.is_set
        assert quick.poll() == 0
    finally:
        node.kill()
        node.wait(timeout=10)
