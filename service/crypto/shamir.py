"""Shamir's secret sharing over GF(2^8) for organisation recovery keys (k of n custodians).

Each byte of the secret is the constant term of its own random polynomial of degree k-1; share *x* holds
the polynomial values at *x* (1..255). Any k shares give the secret back by Lagrange interpolation at 0;
fewer reveal nothing about it (every secret is equally consistent with them). This is the construction of
HashiCorp Vault's ``shamir`` package. It is our own code rather than a library's because the only
maintained Python implementation (PyCryptodome's) takes 16-byte secrets only and would bring a second
cryptography library beside the one this package is the sole user of; the field arithmetic is short and
tested against the properties above.

A share is shown as Crockford base32 in groups of four, typed back by a custodian. Its text carries the
format version, the threshold, the x coordinate and a checksum, so a typo is named at once, long before
the combined key is tried against the organisation's recovery public key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from service.crypto.errors import InvalidReceipt
from service.crypto.receipt import CROCKFORD_ALPHABET, group, normalize_code

VERSION = 1
SECRET_BYTES = 32
MAX_SHARES = 16
_CHECK_BYTES = 2
_PAYLOAD_BYTES = 3 + SECRET_BYTES
_SHARE_BYTES = _PAYLOAD_BYTES + _CHECK_BYTES
SHARE_CHARS = (_SHARE_BYTES * 8 + 4) // 5
_CHECK_LABEL = b"rueckhalt/recovery-share/v1"


def _tables() -> tuple[list[int], list[int]]:
    # Generator 3 of the AES field (x^8 + x^4 + x^3 + x + 1).
    exp = [0] * 512
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        value ^= (value << 1) ^ (0x11B if value & 0x80 else 0)
        value &= 0xFF
    for power in range(255, 512):
        exp[power] = exp[power - 255]
    return exp, log


_EXP, _LOG = _tables()


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[_LOG[a] + 255 - _LOG[b]]


@dataclass(frozen=True)
class Share:
    threshold: int
    x: int
    y: bytes

    def encode(self) -> str:
        """The share as custodians see it: 60 Crockford characters in groups of four."""
        payload = bytes([VERSION, self.threshold, self.x]) + self.y
        data = payload + _check(payload)
        bits = int.from_bytes(data, "big") << (SHARE_CHARS * 5 - len(data) * 8)
        chars = [CROCKFORD_ALPHABET[(bits >> (5 * (SHARE_CHARS - 1 - i))) & 31] for i in range(SHARE_CHARS)]
        return group("".join(chars))


def _check(payload: bytes) -> bytes:
    return hashlib.sha256(_CHECK_LABEL + payload).digest()[:_CHECK_BYTES]


def parse_share(text: str) -> Share:
    """A typed share; InvalidReceipt (never echoing it) for a wrong length, character or checksum."""
    code = normalize_code(text, SHARE_CHARS, "recovery share")
    bits = 0
    for char in code:
        bits = (bits << 5) | CROCKFORD_ALPHABET.index(char)
    padding = SHARE_CHARS * 5 - _SHARE_BYTES * 8
    if bits & ((1 << padding) - 1):
        raise InvalidReceipt("recovery share has a typing error (checksum)")
    data = (bits >> padding).to_bytes(_SHARE_BYTES, "big")
    payload, check = data[:_PAYLOAD_BYTES], data[_PAYLOAD_BYTES:]
    if not secrets.compare_digest(_check(payload), check):
        raise InvalidReceipt("recovery share has a typing error (checksum)")
    if payload[0] != VERSION:
        raise InvalidReceipt("recovery share has an unknown format version")
    threshold, x = payload[1], payload[2]
    if not 2 <= threshold <= MAX_SHARES or not 1 <= x <= 255:
        raise InvalidReceipt("recovery share is malformed")
    return Share(threshold=threshold, x=x, y=payload[3:])


def split_secret(secret: bytes, threshold: int, count: int) -> list[Share]:
    """``count`` shares of which any ``threshold`` give ``secret`` back (2 <= threshold <= count <= 16)."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"secret must be {SECRET_BYTES} bytes")
    if not 2 <= threshold <= count <= MAX_SHARES:
        raise ValueError(f"need 2 <= threshold <= shares <= {MAX_SHARES}")
    # One polynomial per byte: coefficient 0 is the secret byte, the others uniform random.
    coefficients = [[byte, *secrets.token_bytes(threshold - 1)] for byte in secret]
    shares = []
    for x in range(1, count + 1):
        y = bytearray()
        for poly in coefficients:
            value = 0
            for coefficient in reversed(poly):  # Horner's rule
                value = _mul(value, x) ^ coefficient
            y.append(value)
        shares.append(Share(threshold=threshold, x=x, y=bytes(y)))
    return shares


def combine_shares(shares: list[Share]) -> bytes:
    """The secret from at least ``threshold`` shares; ValueError for too few, mixed or repeated shares.

    A wrong share (of another split, or altered) gives a wrong secret rather than an error: the caller checks
    the result against what it must open.
    """
    if not shares:
        raise ValueError("no shares")
    threshold = shares[0].threshold
    if any(share.threshold != threshold for share in shares):
        raise ValueError("the shares belong to different splits (their thresholds differ)")
    xs = [share.x for share in shares]
    if len(set(xs)) != len(xs):
        raise ValueError("the same share was given twice")
    if len(shares) < threshold:
        raise ValueError(f"{threshold} shares are needed, {len(shares)} were given")
    used = shares[:threshold]
    secret = bytearray(SECRET_BYTES)
    for i, share in enumerate(used):
        # Lagrange basis polynomial of share i evaluated at 0 (subtraction is XOR in GF(2^8)).
        basis = 1
        for j, other in enumerate(used):
            if i != j:
                basis = _mul(basis, _div(other.x, other.x ^ share.x))
        for index in range(SECRET_BYTES):
            secret[index] ^= _mul(share.y[index], basis)
    return bytes(secret)
