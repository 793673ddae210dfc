"""Helpers for the tests of ``federation.fetch`` and its users: a fake DNS and a client
session that can only ever reach 127.0.0.0/8 and records every request it starts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from ssl import SSLContext

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

_LOOPBACK = ip_network("127.0.0.0/8")


class FakeDNS:
    """An injected resolver: a fixed table, and a record of what was asked."""

    def __init__(self, table: Mapping[str, list[str]]) -> None:
        self.table = {host: [ip_address(a) for a in addresses] for host, addresses in table.items()}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPv4Address | IPv6Address]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


class LoopbackOnlyConnector(aiohttp.TCPConnector):
    """Safety net: even a broken fetcher cannot send a packet beyond 127.0.0.0/8."""

    async def connect(self, req, traces, timeout):  # noqa: ANN001, ANN201 -- aiohttp's signature
        host = ip_address(req.url.host or "0.0.0.0")
        if host not in _LOOPBACK:
            raise AssertionError(f"test tried to connect to {req.url}")
        return await super().connect(req, traces, timeout)


@dataclass
class Traced:
    """A client session and the URL of every request it started."""

    session: aiohttp.ClientSession
    started: list[URL]


@asynccontextmanager
async def traced_session(ssl: SSLContext | None = None) -> AsyncIterator[Traced]:
    """A session on a LoopbackOnlyConnector (trusting ``ssl``'s CAs when given)."""
    started: list[URL] = []

    async def on_request_start(session, context, params) -> None:  # noqa: ANN001
        started.append(params.url)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    connector = LoopbackOnlyConnector(ssl=ssl if ssl is not None else True)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:
        yield Traced(session, started)


def self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (and its key), written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
