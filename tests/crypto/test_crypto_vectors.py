"""Known answers for the stored formats: today's code must reproduce or open what was written before.

If one of these fails, a change broke data already at rest. Add a new format version instead of editing
vectors.json.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from service.crypto import (
    Argon2Params,
    Context,
    PrivateKey,
    StreamSealer,
    keyed_hash,
    open_sealed,
    open_stream,
    open_with_password,
    receipt_lookup,
    recovery_wrapping_key,
    unwrap_for_reporter,
    unwrap_key,
    verify_password,
)
from service.crypto.aead import _seal_with_nonce
from service.crypto.passwords import _hash_password_with_salt, _seal_with_password_fixed
from service.crypto.receipt import _wrap_for_reporter_with_nonce

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "vectors.json").read_text(encoding="utf-8"))
b = bytes.fromhex


def ctx(data: dict[str, str]) -> Context:
    return Context(**data)


def cases(kind: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = VECTORS[kind]
    assert entries, kind
    return entries


@pytest.mark.parametrize("vector", cases("context_encode"))
def test_context_encode(vector: dict[str, Any]) -> None:
    assert ctx(vector["context"]).encode() == b(vector["encoded"])


@pytest.mark.parametrize("vector", cases("seal"))
def test_seal(vector: dict[str, Any]) -> None:
    key, context = b(vector["key"]), ctx(vector["context"])
    assert _seal_with_nonce(key, b(vector["plaintext"]), context, b(vector["nonce"])) == b(vector["sealed"])
    assert open_sealed(key, b(vector["sealed"]), context) == b(vector["plaintext"])


@pytest.mark.parametrize("vector", cases("stream"))
def test_stream(vector: dict[str, Any]) -> None:
    key, context, plaintext = b(vector["key"]), ctx(vector["context"]), b(vector["plaintext"])
    sink = io.BytesIO()
    sealer = StreamSealer(key, context, sink, vector["chunk_bytes"], _salt=b(vector["salt"]))
    sealer.write(plaintext)
    sealer.close()
    assert sink.getvalue() == b(vector["sealed"])
    assert b"".join(open_stream(key, context, io.BytesIO(b(vector["sealed"])))) == plaintext


@pytest.mark.parametrize("vector", cases("receipt_lookup"))
def test_receipt_lookup(vector: dict[str, Any]) -> None:
    assert receipt_lookup(b(vector["pepper"]), vector["receipt"]) == b(vector["lookup"])


@pytest.mark.parametrize("vector", cases("reporter_wrap"))
def test_reporter_wrap(vector: dict[str, Any]) -> None:
    args = (b(vector["data_key"]), vector["receipt"], b(vector["salt"]), ctx(vector["context"]))
    assert _wrap_for_reporter_with_nonce(*args, b(vector["nonce"])) == b(vector["wrapped"])
    opened = unwrap_for_reporter(
        b(vector["wrapped"]), vector["receipt"], b(vector["salt"]), ctx(vector["context"])
    )
    assert opened == b(vector["data_key"])


@pytest.mark.parametrize("vector", cases("hpke"))
def test_hpke_stored_wrapped_key_still_unwraps(vector: dict[str, Any]) -> None:
    """Given a key pair stored as bytes and a grant wrapped by an earlier build, both still work."""
    private = PrivateKey.from_bytes(b(vector["private_key"]))
    assert private.public_key().raw == b(vector["public_key"])
    assert unwrap_key(b(vector["wrapped"]), private, ctx(vector["context"])) == b(vector["data_key"])


@pytest.mark.parametrize("vector", cases("keyed_hash"))
def test_keyed_hash(vector: dict[str, Any]) -> None:
    assert keyed_hash(b(vector["key"]), vector["purpose"], b(vector["message"])) == b(vector["digest"])


@pytest.mark.parametrize("vector", cases("recovery_wrapping_key"))
def test_recovery_wrapping_key(vector: dict[str, Any]) -> None:
    assert recovery_wrapping_key(vector["recovery_key"]) == b(vector["wrapping_key"])


@pytest.mark.parametrize("vector", cases("password_seal"))
def test_password_seal(vector: dict[str, Any]) -> None:
    params, context = Argon2Params(*vector["params"]), ctx(vector["context"])
    sealed = _seal_with_password_fixed(
        vector["password"], b(vector["plaintext"]), context, params, b(vector["salt"]), b(vector["nonce"])
    )
    assert sealed == b(vector["sealed"])
    assert open_with_password(vector["password"], b(vector["sealed"]), context) == b(vector["plaintext"])


@pytest.mark.parametrize("vector", cases("password_hash"))
def test_password_hash(vector: dict[str, Any]) -> None:
    params = Argon2Params(*vector["params"])
    assert _hash_password_with_salt(vector["password"], params, b(vector["salt"])) == vector["encoded"]
    assert verify_password(vector["password"], vector["encoded"])
