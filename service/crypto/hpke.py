"""Public-key wrapping of data keys: HPKE (RFC 9180), ML-KEM-768 + X25519 hybrid, HKDF-SHA256, AES-256-GCM.

The hybrid KEM keeps today's reports closed against a future quantum computer and against a break of
ML-KEM alone. Wrapped format v1: ``0x01 || HPKE enc(1120) || ciphertext || tag``; the context (with the
version byte in front) is HPKE ``info``, because this HPKE API has no separate associated data.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke as _hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from service.crypto.aead import DATA_KEY_BYTES, check_key, new_data_key, open_sealed, seal
from service.crypto.context import Context
from service.crypto.errors import CryptoError, DecryptionError, UnsupportedFormatError
from service.crypto.keyed import hkdf_sha256

MLKEM_SEED_BYTES = 64
MLKEM_PUBLIC_BYTES = 1184
X25519_BYTES = 32
PUBLIC_KEY_BYTES = MLKEM_PUBLIC_BYTES + X25519_BYTES
PRIVATE_KEY_BYTES = MLKEM_SEED_BYTES + X25519_BYTES
VERSION = 1
_VERSION_BYTE = bytes([VERSION])
_ENC_BYTES = 1088 + X25519_BYTES
WRAPPED_KEY_BYTES = 1 + _ENC_BYTES + DATA_KEY_BYTES + 16

_SUITE = _hpke.Suite(_hpke.KEM.MLKEM768_X25519, _hpke.KDF.HKDF_SHA256, _hpke.AEAD.AES_256_GCM)


def _parse_public(raw: bytes) -> _hpke.MLKEM768X25519PublicKey:
    if len(raw) != PUBLIC_KEY_BYTES:
        raise CryptoError(f"public key must be {PUBLIC_KEY_BYTES} bytes")
    try:
        return _hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:MLKEM_PUBLIC_BYTES]),
            x25519.X25519PublicKey.from_public_bytes(raw[MLKEM_PUBLIC_BYTES:]),
        )
    except ValueError:
        raise CryptoError("public key is malformed") from None


def _parse_private(raw: bytes) -> _hpke.MLKEM768X25519PrivateKey:
    if len(raw) != PRIVATE_KEY_BYTES:
        raise CryptoError(f"private key must be {PRIVATE_KEY_BYTES} bytes")
    try:
        return _hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:MLKEM_SEED_BYTES]),
            x25519.X25519PrivateKey.from_private_bytes(raw[MLKEM_SEED_BYTES:]),
        )
    except ValueError:
        raise CryptoError("private key is malformed") from None


@dataclass(frozen=True)
class PublicKey:
    """ML-KEM-768 public key (1184 bytes) followed by the X25519 public key (32 bytes)."""

    raw: bytes
    # Parsed once: every intake wraps to about three organisations, and parsing costs as much as a tenth
    # of a wrap. The parsed key objects of `cryptography` are immutable, so sharing them is safe.
    _parsed: _hpke.MLKEM768X25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_parsed", _parse_public(self.raw))

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        return _public_key(bytes(data))

    @functools.cached_property
    def digest(self) -> bytes:
        """SHA-256 of ``raw``: how the database names this key (``sha256(public_key)``)."""
        return hashlib.sha256(self.raw).digest()


@functools.lru_cache(maxsize=1024)
def _public_key(raw: bytes) -> PublicKey:
    # Organisation keys are public and few; the cache is keyed by the bytes themselves, so a changed key
    # in the database is a different entry, never a stale one.
    return PublicKey(raw)


@dataclass(frozen=True, eq=False, repr=False)
class PrivateKey:
    """ML-KEM-768 seed (64 bytes) followed by the X25519 private key (32 bytes).

    The 64-byte seed is stored rather than the 2,400-byte expanded key: FIPS 203 allows either, and the seed
    is smaller and always yields a well-formed key.
    """

    raw: bytes

    def __post_init__(self) -> None:
        _parse_private(self.raw)

    @classmethod
    def from_bytes(cls, data: bytes) -> PrivateKey:
        return cls(bytes(data))

    def public_key(self) -> PublicKey:
        # The hybrid key classes have no serialisation of their own, so the parts are derived one by one.
        mlkem_public = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.raw[:MLKEM_SEED_BYTES]).public_key()
        x_public = x25519.X25519PrivateKey.from_private_bytes(self.raw[MLKEM_SEED_BYTES:]).public_key()
        return PublicKey(mlkem_public.public_bytes_raw() + x_public.public_bytes_raw())

    def __repr__(self) -> str:
        return "PrivateKey(<secret>)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return hmac.compare_digest(self.raw, other.raw)

    def __hash__(self) -> int:
        return hash(self.raw)


def generate_keypair() -> tuple[PrivateKey, PublicKey]:
    mlkem_private = mlkem.MLKEM768PrivateKey.generate()
    x_private = x25519.X25519PrivateKey.generate()
    private = PrivateKey(mlkem_private.private_bytes_raw() + x_private.private_bytes_raw())
    return private, private.public_key()


def _info(context: Context) -> bytes:
    return _VERSION_BYTE + context.encode()


def wrap_key(data_key: bytes, recipient: PublicKey, context: Context) -> bytes:
    check_key(data_key)
    return _VERSION_BYTE + _SUITE.encrypt(data_key, recipient._parsed, info=_info(context))


def unwrap_key(wrapped: bytes, recipient: PrivateKey, context: Context) -> bytes:
    if len(wrapped) < 1:
        raise DecryptionError("wrapped key is empty")
    if wrapped[0] != VERSION:
        raise UnsupportedFormatError(f"unsupported wrapped-key format version {wrapped[0]}")
    if len(wrapped) != WRAPPED_KEY_BYTES:
        raise DecryptionError("wrapped key has the wrong length")
    try:
        data_key = _SUITE.decrypt(wrapped[1:], _parse_private(recipient.raw), info=_info(context))
    except (InvalidTag, ValueError):
        raise DecryptionError("wrapped key could not be opened (wrong key or context, or tampered)") from None
    return data_key


def seal_private_key(private: PrivateKey, wrapping_key: bytes, context: Context) -> bytes:
    return seal(wrapping_key, private.raw, context)


def open_private_key(sealed: bytes, wrapping_key: bytes, context: Context) -> PrivateKey:
    raw = open_sealed(wrapping_key, sealed, context)
    try:
        return PrivateKey(raw)
    except CryptoError:
        raise DecryptionError("sealed private key has the wrong shape") from None


# -- a private key wrapped to a public key (organisation epoch keys for members and for recovery) ----------
#
# HPKE here wraps 32-byte keys only, and a private key has 96 bytes: a fresh key is wrapped to the recipient
# and seals the private key. Format v1: ``0x01 || wrap_key(grant key) (1,169) || seal(grant key, private)``;
# both parts are bound to the same context (HPKE info and AES-GCM AAD are separate derivations).
_WRAPPED_PRIVATE_VERSION = 1


def wrap_private_key(private: PrivateKey, recipient: PublicKey, context: Context) -> bytes:
    grant_key = new_data_key()
    return (
        bytes([_WRAPPED_PRIVATE_VERSION])
        + wrap_key(grant_key, recipient, context)
        + seal_private_key(private, grant_key, context)
    )


def unwrap_private_key(wrapped: bytes, recipient: PrivateKey, context: Context) -> PrivateKey:
    if len(wrapped) < 1:
        raise DecryptionError("wrapped private key is empty")
    if wrapped[0] != _WRAPPED_PRIVATE_VERSION:
        raise UnsupportedFormatError(f"unsupported wrapped-private-key format version {wrapped[0]}")
    grant_key = unwrap_key(wrapped[1 : 1 + WRAPPED_KEY_BYTES], recipient, context)
    return open_private_key(wrapped[1 + WRAPPED_KEY_BYTES :], grant_key, context)


def keypair_from_seed(seed: bytes) -> tuple[PrivateKey, PublicKey]:
    """A key pair derived from 32 secret bytes (the recovery secret that custodians hold in shares)."""
    if len(seed) != DATA_KEY_BYTES:
        raise ValueError(f"seed must be {DATA_KEY_BYTES} bytes")
    private = PrivateKey(hkdf_sha256(seed, None, b"rueckhalt/keypair-from-seed/v1", length=PRIVATE_KEY_BYTES))
    return private, private.public_key()
