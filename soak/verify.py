"""The soak's verdict, read from each node's own database and status report.

An activity's *effect* at a follower is the state of the object it is about: present
with the origin's final version, or gone (deleted) if the origin deleted it. So for
every (origin, follower) pair the follower's copy of every origin contribution is
compared with the origin's row; what differs is *lost*, and a second row or a second
inbox item for one activity is a *duplicated effect*.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

from node.hub.search_snapshot import SNAPSHOT_FILE, accept_for, read_snapshot
from soak.cluster import Cluster, SoakNode, _cli
from soak.load import LoadLedger

UNFINISHED_DELIVERIES = ("pending", "in_flight")
UNFINISHED_INBOX = ("received", "processing", "retry")


@dataclass
class SoakReport:
    activities: int = 0
    deliveries: int = 0
    delivered: int = 0
    kills: int = 0
    restarts: int = 0
    retries: int = 0
    lost: int = 0
    duplicated: int = 0
    gave_up_to_held_down: int = 0
    pending_to_held_down: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicated == 0

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)

    def lines(self) -> list[str]:
        figures = [
            ("activities", self.activities), ("deliveries", self.deliveries),
            ("delivered", self.delivered), ("kills", self.kills), ("restarts", self.restarts),
            ("retries", self.retries), ("lost", self.lost), ("duplicated effects", self.duplicated),
            ("gave up (held-down host)", self.gave_up_to_held_down),
            ("pending (held-down host)", self.pending_to_held_down),
            ("seconds", round(self.seconds, 1)),
        ]  # fmt: skip
        out = [f"{name:<26} {value}" for name, value in figures]
        out += [f"note: {note}" for note in self.notes]
        out += [f"PROBLEM: {text}" for text in self.problems]
        return out


def held_down_host(cluster: Cluster) -> str | None:
    return next((node.host for node in cluster.nodes if node.held_down), None)


def drained(cluster: Cluster) -> bool:
    """Nothing left to send to a live host, nothing left to process, every follow accepted."""
    dead = held_down_host(cluster) or ""
    for node in cluster.nodes:
        if node.held_down:
            continue
        marks = ",".join("?" * len(UNFINISHED_DELIVERIES))
        sending = node.query(f"SELECT count(*) FROM deliveries WHERE state IN ({marks}) "
                             "AND host != ?", *UNFINISHED_DELIVERIES, dead)[0][0]
        marks = ",".join("?" * len(UNFINISHED_INBOX))
        waiting = node.query(f"SELECT count(*) FROM inbox_items WHERE state IN ({marks})",
                             *UNFINISHED_INBOX)[0][0]
        unaccepted = node.query("SELECT count(*) FROM following WHERE state != 'accepted' "
                                "AND target_uri NOT LIKE ?", f"http://{dead}/%")[0][0]
        if sending or waiting or unaccepted:
            return False
    return True


def _documents(node: SoakNode) -> dict[str, tuple[dict, bool]]:
    rows = node.query("SELECT uri, document, deleted_at IS NOT NULL FROM contributions")
    return {uri: (json.loads(document), bool(deleted)) for uri, document, deleted in rows}


def _copies(node: SoakNode) -> dict[str, tuple[dict | None, bool]]:
    rows = node.query("SELECT uri, document, deleted FROM remote_objects")
    return {uri: (json.loads(document) if document else None, bool(deleted))
            for uri, document, deleted in rows}


def _same_version(origin: dict, copy: dict | None) -> bool:
    if copy is None:
        return False
    return all(origin.get(key) == copy.get(key) for key in ("updated", "content", "name"))


def check_effects(cluster: Cluster, ledger: LoadLedger, report: SoakReport) -> None:
    """Every accepted contribution is at its origin, and at every live follower as it is there."""
    by_actor = {node.actor_url: node for node in cluster.nodes}
    copies = {node.slug: _copies(node) for node in cluster.nodes if not node.held_down}
    for origin in cluster.members:
        if origin.held_down:
            # Dead since: what it accepted waits in its own queue until it comes back.
            waiting = origin.query("SELECT count(*) FROM deliveries WHERE state IN "
                                   "('pending', 'in_flight')")[0][0]
            report.notes.append(f"{origin.slug} (held down) keeps {waiting} deliveries queued")
            continue
        documents = _documents(origin)
        for uri in ledger.created.get(origin.slug, set()) - documents.keys():
            report.lost += 1
            report.problem(f"{origin.slug} answered 2xx for {uri} but does not hold it")
        followers = [by_actor[actor] for (actor,) in origin.query(
            "SELECT actor_uri FROM followers WHERE state = 'accepted'") if actor in by_actor]
        for follower in followers:
            if follower.held_down:
                continue
            held = copies[follower.slug]
            for uri, (document, deleted) in documents.items():
                copy, copy_deleted = held.get(uri, (None, True))
                if deleted:
                    effect_ok = uri not in held or copy_deleted
                else:
                    effect_ok = not copy_deleted and _same_version(document, copy)
                if not effect_ok:
                    report.lost += 1
                    report.problem(f"{follower.slug} has {uri} wrong (deleted at origin: {deleted})")


def check_duplicates(cluster: Cluster, report: SoakReport) -> None:
    for node in cluster.nodes:
        if node.held_down:
            continue
        for table, column in (("remote_objects", "uri"), ("inbox_items", "activity_uri")):
            extra = node.query(f"SELECT count(*) - count(DISTINCT {column}) FROM {table}")[0][0]
            if extra:
                report.duplicated += extra
                report.problem(f"{node.slug}: {extra} duplicate rows in {table}")


def count_deliveries(cluster: Cluster, report: SoakReport) -> None:
    dead = held_down_host(cluster) or ""
    for node in cluster.nodes:
        rows = node.query("SELECT host, state, count(*), sum(max(attempts - 1, 0)) "
                          "FROM deliveries GROUP BY host, state")
        for host, state, number, retried in rows:
            report.deliveries += number
            report.retries += retried or 0
            if state == "delivered":
                report.delivered += number
            elif host == dead and state == "gave_up":
                report.gave_up_to_held_down += number
            elif host == dead and state in UNFINISHED_DELIVERIES:
                report.pending_to_held_down += number
            elif not node.held_down:
                report.problem(f"{node.slug}: {number} deliveries to {host} are {state}")


def node_status_json(node: SoakNode) -> dict:
    done = subprocess.run(_cli("status", "--json", "--data-dir", str(node.data_dir)),
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"praxisnetz status for {node.slug} failed: {done.stderr}")
    return json.loads(done.stdout)


def check_status(cluster: Cluster, report: SoakReport) -> None:
    """``praxisnetz status --json``: the held-down host is marked, no other host is."""
    dead = held_down_host(cluster)
    for node in cluster.nodes:
        if node.held_down:
            continue
        failing = {entry["host"]: entry for entry in node_status_json(node)["failing_hosts"]}
        sent_to_dead = node.query("SELECT count(*) FROM deliveries WHERE host = ? AND state != "
                                  "'delivered'", dead)[0][0]
        entry = failing.pop(dead, None) if dead else None
        # Given up is the mark; the breaker opens only after five failures in a row,
        # which a node with a single delivery for the dead host never reaches.
        if sent_to_dead and (entry is None or entry["gave_up"] < 1):
            report.problem(f"{node.slug}: status does not mark {dead} as given up: {entry}")
        elif entry is not None:
            report.notes.append(
                f"status of {node.slug} for {dead}: gave_up={entry['gave_up']} "
                f"pending={entry['pending']} breaker={entry['breaker_state']} "
                f"unavailable_since={entry.get('unavailable_since')}")
        for host, other in failing.items():
            if other["failed"] or other["gave_up"] or other["pending"]:
                report.problem(f"{node.slug}: status shows live host {host} failing: {other}")


def check_follow_churn(cluster: Cluster, report: SoakReport) -> None:
    """After the churn both ends agree: a live member follows the hub (its ``following``
    row is accepted) exactly when the hub has it as an accepted follower."""
    hub = cluster.hub
    hub_followers = {actor for (actor,) in hub.query(
        "SELECT actor_uri FROM followers WHERE state = 'accepted'")}
    for member in cluster.members:
        if member.held_down:
            continue  # its last Undo or Follow may wait in its own queue
        follows = bool(member.query("SELECT count(*) FROM following WHERE target_uri = ? "
                                    "AND state = 'accepted'", hub.actor_url)[0][0])
        if follows != (member.actor_url in hub_followers):
            report.problem(f"{member.slug} {'follows' if follows else 'does not follow'} the "
                           f"hub, but the hub {'does not list' if follows else 'lists'} it")
        elif not follows:
            report.notes.append(f"{member.slug} left the hub and its re-follow was refused "
                                "(both ends agree)")


_LIST_INDEX = """
import sys
import pyoxigraph as ox
from node.config import load_config
from node.hub.index import ATTRIBUTED_TO
from node.hub.runtime import bundled_contexts
from node.hub.wiring import open_index
index = open_index(load_config(sys.argv[1]), bundled_contexts())
for quad in index.store.quads_for_pattern(None, ATTRIBUTED_TO, None, None):
    if isinstance(quad.subject, ox.NamedNode) and quad.object == quad.graph_name:
        print(quad.subject.value)
"""


def _indexed(hub: SoakNode) -> set[str]:
    """The contributions in the hub's index (as ``HubIndex.count`` counts them)."""
    done = subprocess.run([sys.executable, "-c", _LIST_INDEX, str(hub.data_dir)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"reading the hub index failed: {done.stderr}")
    return {line.strip() for line in done.stdout.splitlines() if line.strip()}


def hub_log_size(hub: SoakNode) -> int:
    """The size of the hub's ``serve`` log (where ``hub_log_since`` reads on)."""
    return (hub.data_dir / "serve.log").stat().st_size


def hub_log_since(hub: SoakNode, offset: int) -> str:
    """What the hub's ``serve`` logged from ``offset`` on."""
    return (hub.data_dir / "serve.log").read_bytes()[offset:].decode(errors="replace")


def _searched(hub: SoakNode, report: SoakReport) -> set[str] | None:
    """The contributions in the search the hub's clean stop wrote (its snapshot)."""
    reading, index = read_snapshot(hub.data_dir / SNAPSHOT_FILE, accept_for(None, None))
    if index is None:
        report.problem(f"the hub's clean stop left no search snapshot ({reading.verdict.value})")
        return None
    return {hit.uri for hit in index.search("", limit=len(index))}


def check_hub_index(cluster: Cluster, report: SoakReport) -> None:
    """The hub stopped: its index, and the search its stop wrote, hold what a rebuild from
    SQL holds (``hub reindex``)."""
    hub = cluster.hub
    cluster.stop(hub)
    before = _indexed(hub)
    searched = _searched(hub, report)
    done = subprocess.run(_cli("hub", "reindex", "--data-dir", str(hub.data_dir)),
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        report.problem(f"praxisnetz hub reindex failed: {done.stderr or done.stdout}")
        return
    after = _indexed(hub)
    report.notes.append(f"hub index: {len(before)} contributions live, {len(after)} after "
                        f"rebuilding from SQL ({done.stdout.strip()})")
    for uri in sorted(after - before):
        report.problem(f"the hub index lacked {uri}, which a rebuild from SQL holds")
    for uri in sorted(before - after):
        report.problem(f"the hub index held {uri}, which a rebuild from SQL does not")
    if searched is not None:
        report.notes.append(f"hub search: {len(searched)} contributions at the clean stop")
        for uri in sorted(after - searched):
            report.problem(f"the hub search lacked {uri}, which a rebuild from SQL holds")
        for uri in sorted(searched - after):
            report.problem(f"the hub search held {uri}, which a rebuild from SQL does not")


def verify(cluster: Cluster, ledger: LoadLedger, report: SoakReport,
           breakers_seen: Counter[str]) -> None:
    report.activities, report.kills, report.restarts = ledger.activities, ledger.kills, ledger.restarts
    accepted = ", ".join(f"{name}={count}" for name, count in sorted(ledger.accepted.items()))
    report.notes.append(f"operations accepted (2xx): {accepted}")
    refused = ", ".join(f"{name}={count}" for name, count in sorted(ledger.refused.items()))
    report.notes.append(f"operations not accepted (node down or refused): {refused or 'none'}")
    report.notes += [f"refused: {sample}" for sample in ledger.samples[:3]]
    count_deliveries(cluster, report)
    check_effects(cluster, ledger, report)
    check_duplicates(cluster, report)
    check_follow_churn(cluster, report)
    check_status(cluster, report)
    seen = ", ".join(f"{state}={count}" for state, count in sorted(breakers_seen.items()))
    report.notes.append(f"breaker states seen in /api/status during the chaos: {seen or 'none'}")
    if not breakers_seen:
        report.problem("no failing host (backoff) ever showed in /api/status during the chaos")
    check_hub_index(cluster, report)
