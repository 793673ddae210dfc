"""``praxisnetz demo``: arguments, the run, and what to open afterwards."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path

from examples.catalog import (
    load_handbook,
)
from node.demo.common import (
    DEFAULT_BASE_PORT,
    DEFAULT_DATA_DIR,
    DEMO_USER,
    SIGNIN_FILE,
    TOKEN_FILE,
    DemoError,
    DemoNode,
    DemoReport,
)
from node.demo.processes import (
    interrupt_flag,
    plan_nodes,
    prepare_nodes,
    running_servers,
    wait_until_stopped,
)
from node.demo.story import run_story


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="demo folder (default: ./demo-data)")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT, help="hub port; nodes use the next ones")
    parser.add_argument("--reset", action="store_true", help="delete the demo folder first and start afresh")
    parser.add_argument("--check", action="store_true", help="run headless, verify every step, exit 0 only on success")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for federation to settle")


def print_welcome(nodes: list[DemoNode], tokens: dict[str, str], data_dir: Path,
                  report: DemoReport | None = None) -> None:
    handbook = load_handbook()
    print("\nPraxisnetz demo is running. Open in a browser:")
    for node in nodes:
        print(f"  {node.example.name:<36} {node.base_url}/")
    hub = next(node for node in nodes if node.example.is_hub)
    print(f"\nHub actor: {hub.actor_url}  ({len(list(handbook.sections()))} handbook sections prepared)")
    for url in report.hub_urls if report is not None else ():
        print(f"  {url}")
    signin = (hub.data_dir / SIGNIN_FILE).read_text().split()
    print(f"Sign in at {hub.base_url}/signin as {signin[0]!r} with password {signin[1]!r}")
    print(f"(every node has the account {DEMO_USER!r}; passwords are in {data_dir}/<slug>/{SIGNIN_FILE})")
    print(f"Admin API tokens (Authorization: Bearer …) are in {data_dir}/<slug>/{TOKEN_FILE}, e.g.:")
    print(f"  curl -H 'Authorization: Bearer {tokens[hub.slug]}' {hub.base_url}/api/status")
    print("Press Ctrl-C to stop all nodes.", flush=True)


def main(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    if args.reset and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    nodes = plan_nodes(data_dir, args.base_port)
    started = time.monotonic()
    try:
        print(f"Creating {len(nodes)} nodes in {data_dir} …", flush=True)
        tokens = prepare_nodes(nodes)
        with running_servers(nodes) as processes:
            report = asyncio.run(run_story(nodes, tokens, args))
            elapsed = time.monotonic() - started
            passed = sum(1 for _, ok, _ in report.checks if ok)
            print(f"\n{passed} of {len(report.checks)} checks passed, "
                  f"{report.published} contributions, {elapsed:.1f} s", flush=True)  # fmt: skip
            if args.check:
                return 0 if report.ok else 1
            # Ctrl-C from here on is the normal way to stop, even while the welcome prints.
            with interrupt_flag() as interrupted:
                print_welcome(nodes, tokens, data_dir, report)
                wait_until_stopped(processes, interrupted)
            print("\nStopping …", flush=True)
            return 0
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while starting: the nodes are already stopped
        print("\nStopped.", file=sys.stderr)
        return 130
