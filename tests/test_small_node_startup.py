"""What `praxisnetz serve` does differently to start fast (#9 item 4), and that it still
holds: its own RSA key is read without OpenSSL's slow key check but a damaged key is
still refused; the garbage collector is off during start-up and on again once the
start-up objects are frozen; pages and the feed still render (Jinja2 and ElementTree
are imported on first use). `python -m bench.small_node` measures the time.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from federation.keys import KeyFormatError, generate_ed25519_key, generate_rsa_key
from node.cli import _freeze_start_up_objects
from node.config import NodeConfig
from node.identity import create_node_keys, read_key_pair


def _config(tmp_path: Path) -> NodeConfig:
    return NodeConfig(data_dir=tmp_path, base_url="http://127.0.0.1:8123", name="Klein",
                      slug="klein")  # fmt: skip


def _pem(key: rsa.RSAPrivateKey | object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip


def test_the_node_key_pair_reads_back(tmp_path: Path) -> None:
    config = _config(tmp_path)
    created = create_node_keys(config)
    pair = read_key_pair(config)
    assert pair.rsa.private_key.private_numbers() == created.rsa.private_key.private_numbers()
    assert pair.rsa.key_id == config.rsa_key_id


def test_a_damaged_rsa_key_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    create_node_keys(config)
    good = generate_rsa_key().private_numbers()
    # a private exponent that does not belong to the public one: parseable, and OpenSSL's
    # key check (skipped now) would have refused it; its signatures verify under nothing
    d = good.d + 2
    damaged = rsa.RSAPrivateNumbers(
        p=good.p, q=good.q, d=d, dmp1=d % (good.p - 1), dmq1=d % (good.q - 1),
        iqmp=good.iqmp, public_numbers=good.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    config.rsa_key_path.write_bytes(_pem(damaged))
    with pytest.raises(KeyFormatError, match="does not verify its own signature"):
        read_key_pair(config)


def test_an_ed25519_key_in_the_rsa_file_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    create_node_keys(config)
    config.rsa_key_path.write_bytes(_pem(generate_ed25519_key()))
    with pytest.raises(KeyFormatError, match="rsa.pem"):
        read_key_pair(config)


async def test_the_freeze_switches_the_collector_back_on() -> None:
    gc.disable()  # as cmd_serve does before its imports
    try:
        await _freeze_start_up_objects(object())
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.enable()
