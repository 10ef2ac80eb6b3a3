"""Password-derived keys and password hashes (Argon2id, RFC 9106).

Defaults are RFC 9106's second recommended option (64 MiB, t=3, p=4). The parameters are stored next
to every salt, so they can be raised later without breaking what was written before; stored parameters
are bounded both ways, so a forged row can neither weaken a check nor make the server allocate gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import struct
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from service.crypto.aead import NONCE_BYTES, TAG_BYTES, gcm_decrypt, gcm_encrypt, open_sealed, seal
from service.crypto.context import Context
from service.crypto.errors import DecryptionError, UnsupportedFormatError
from service.crypto.keyed import hkdf_sha256

PASSWORD_KEY_BYTES = 32
PASSWORD_SALT_BYTES = 16
# OWASP's lowest Argon2id option is 19 MiB; 8 MiB is the floor below which nothing is accepted, so tests
# can run fast while a tampered parameter block still cannot make a key cheap to guess.
MIN_MEMORY_KIB = 8192
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_ITERATIONS = 64
MAX_LANES = 64
VERSION = 1
_VERSION_BYTE = bytes([VERSION])
_SEAL_LABEL = b"rueckhalt/password-seal/v1"
_PARAMS_BYTES = 12
_HASH_PATTERN = re.compile(
    r"\$rh-argon2id\$v=(?P<v>[0-9]{1,3})\$m=(?P<m>[0-9]{1,8}),t=(?P<t>[0-9]{1,3}),p=(?P<p>[0-9]{1,3})"
    r"\$(?P<salt>[A-Za-z0-9+/]{1,128})\$(?P<hash>[A-Za-z0-9+/]{1,128})"
)


@dataclass(frozen=True)
class Argon2Params:
    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        for name in ("memory_kib", "iterations", "lanes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Argon2Params.{name} must be int")
        if not MIN_MEMORY_KIB <= self.memory_kib <= MAX_MEMORY_KIB:
            raise ValueError(f"Argon2 memory must be between {MIN_MEMORY_KIB} and {MAX_MEMORY_KIB} KiB")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"Argon2 iterations must be between 1 and {MAX_ITERATIONS}")
        if not 1 <= self.lanes <= MAX_LANES:
            raise ValueError(f"Argon2 lanes must be between 1 and {MAX_LANES}")

    def encode(self) -> bytes:
        return struct.pack(">III", self.memory_kib, self.iterations, self.lanes)

    @classmethod
    def decode(cls, data: bytes) -> Argon2Params:
        """Inverse of encode(); ValueError if the bytes are not valid parameters within the bounds."""
        if len(data) != _PARAMS_BYTES:
            raise ValueError(f"Argon2 parameters must be {_PARAMS_BYTES} bytes")
        memory_kib, iterations, lanes = struct.unpack(">III", data)
        return cls(memory_kib, iterations, lanes)


def _password_bytes(password: str) -> bytes:
    # The same password typed on a Mac (NFD) and on Windows (NFC) must give the same key.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def derive_password_key(password: str, salt: bytes, params: Argon2Params = Argon2Params()) -> bytes:
    if len(salt) < PASSWORD_SALT_BYTES:
        raise ValueError(f"salt must be at least {PASSWORD_SALT_BYTES} bytes")
    kdf = Argon2id(
        salt=salt,
        length=PASSWORD_KEY_BYTES,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(_password_bytes(password))


def _seal_with_password_fixed(
    password: str, plaintext: bytes, context: Context, params: Argon2Params, salt: bytes, nonce: bytes
) -> bytes:
    """For known-answer tests only."""
    header = _VERSION_BYTE + params.encode() + salt
    key = derive_password_key(password, salt, params)
    return header + nonce + gcm_encrypt(key, nonce, plaintext, _SEAL_LABEL + header + context.encode())


def seal_with_password(
    password: str, plaintext: bytes, context: Context, params: Argon2Params = Argon2Params()
) -> bytes:
    """Format v1: ``0x01 || params(12) || salt(16) || nonce(12) || ciphertext || tag``.

    The header (version, parameters, salt) and the context are the AAD.
    """
    return _seal_with_password_fixed(
        password,
        plaintext,
        context,
        params,
        secrets.token_bytes(PASSWORD_SALT_BYTES),
        secrets.token_bytes(NONCE_BYTES),
    )


def open_with_password(password: str, sealed: bytes, context: Context) -> bytes:
    if len(sealed) < 1:
        raise DecryptionError("password-sealed data is empty")
    if sealed[0] != VERSION:
        raise UnsupportedFormatError(f"unsupported password-sealed format version {sealed[0]}")
    header_bytes = 1 + _PARAMS_BYTES + PASSWORD_SALT_BYTES
    if len(sealed) < header_bytes + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("password-sealed data is truncated")
    try:
        params = Argon2Params.decode(sealed[1 : 1 + _PARAMS_BYTES])
    except ValueError:
        raise DecryptionError("password-sealed data has parameters out of bounds") from None
    header = sealed[:header_bytes]
    key = derive_password_key(password, sealed[1 + _PARAMS_BYTES : header_bytes], params)
    nonce = sealed[header_bytes : header_bytes + NONCE_BYTES]
    return gcm_decrypt(
        key, nonce, sealed[header_bytes + NONCE_BYTES :], _SEAL_LABEL + header + context.encode()
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    # Only the canonical spelling is accepted, so one hash has exactly one encoding.
    if _b64(data) != text:
        raise ValueError("non-canonical base64")
    return data


def _hash_password_with_salt(password: str, params: Argon2Params, salt: bytes) -> str:
    digest = derive_password_key(password, salt, params)
    return (
        f"$rh-argon2id$v={VERSION}$m={params.memory_kib},t={params.iterations},p={params.lanes}"
        f"${_b64(salt)}${_b64(digest)}"
    )


def hash_password(password: str, params: Argon2Params = Argon2Params()) -> str:
    """``$rh-argon2id$v=1$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>``, unpadded standard base64."""
    return _hash_password_with_salt(password, params, secrets.token_bytes(PASSWORD_SALT_BYTES))


def _parse_hash(encoded: str) -> tuple[Argon2Params, bytes, bytes] | None:
    match = _HASH_PATTERN.fullmatch(encoded) if isinstance(encoded, str) else None
    if match is None or int(match["v"]) != VERSION:
        return None
    try:
        params = Argon2Params(int(match["m"]), int(match["t"]), int(match["p"]))
        salt = _unb64(match["salt"])
        digest = _unb64(match["hash"])
    except (ValueError, binascii.Error):
        return None
    if len(salt) < PASSWORD_SALT_BYTES or len(digest) != PASSWORD_KEY_BYTES:
        return None
    return params, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """True only for the right password; a malformed or out-of-bounds ``encoded`` is simply False."""
    parsed = _parse_hash(encoded)
    if parsed is None:
        return False
    params, salt, digest = parsed
    return hmac.compare_digest(derive_password_key(password, salt, params), digest)


def needs_rehash(encoded: str, params: Argon2Params = Argon2Params()) -> bool:
    """Whether a stored hash should be recomputed with ``params`` at the next successful login."""
    parsed = _parse_hash(encoded)
    return parsed is None or parsed[0] != params


# -- sealed under the password AND a server secret (format v2) --------------------------------------------
#
# Format v1 above derives its key from the password alone, so a stolen dump is enough to test guesses
# offline, and one guessed counsellor password opens an organisation's cases. Format v2 mixes in a server
# secret (the key pepper, never in the database): key = HKDF-SHA256(ikm=Argon2id(password, salt),
# salt=pepper, info=label || header). Without the pepper no guess can be checked; with it, each guess still
# costs an Argon2id run. The header names the pepper by a 4-byte id, so that during a rotation a value
# sealed under the previous pepper is still found and re-sealed at the owner's next sign-in.

PEPPERED_VERSION = 2
LEGACY_WRAPPED_VERSION = 3
PEPPER_ID_BYTES = 4
_PEPPERED_LABEL = b"rueckhalt/password-seal/v2"
_LEGACY_WRAP_LABEL = b"rueckhalt/password-seal/legacy-wrap/v3"
_MIN_PEPPER_BYTES = 32


def pepper_id(pepper: bytes) -> bytes:
    """A public 4-byte name of a pepper (HMAC of a constant): tells which pepper sealed a value."""
    if len(pepper) < _MIN_PEPPER_BYTES:
        raise ValueError(f"pepper must be at least {_MIN_PEPPER_BYTES} bytes")
    return hmac.new(pepper, b"rueckhalt/pepper-id/v1", "sha256").digest()[:PEPPER_ID_BYTES]


def sealed_pepper_id(sealed: bytes) -> bytes | None:
    """The id of the pepper a v2 or v3 value was sealed under (its header says it); None for other values."""
    if sealed[:1] == bytes([LEGACY_WRAPPED_VERSION]):
        return sealed[1 : 1 + PEPPER_ID_BYTES]
    if sealed[:1] == bytes([PEPPERED_VERSION]):
        start = 1 + _PARAMS_BYTES + PASSWORD_SALT_BYTES
        return sealed[start : start + PEPPER_ID_BYTES]
    return None


def _peppered_key(password: str, salt: bytes, params: Argon2Params, pepper: bytes, header: bytes) -> bytes:
    stretched = derive_password_key(password, salt, params)
    return hkdf_sha256(stretched, pepper, _PEPPERED_LABEL + header)


def _seal_with_password_and_pepper_fixed(
    password: str,
    plaintext: bytes,
    context: Context,
    pepper: bytes,
    params: Argon2Params,
    salt: bytes,
    nonce: bytes,
) -> bytes:
    """For known-answer tests only."""
    header = bytes([PEPPERED_VERSION]) + params.encode() + salt + pepper_id(pepper)
    key = _peppered_key(password, salt, params, pepper, header)
    return header + nonce + gcm_encrypt(key, nonce, plaintext, _PEPPERED_LABEL + header + context.encode())


def seal_with_password_and_pepper(
    password: str,
    plaintext: bytes,
    context: Context,
    pepper: bytes,
    params: Argon2Params = Argon2Params(),
) -> bytes:
    """Format v2: ``0x02 || params(12) || salt(16) || pepper id(4) || nonce(12) || ciphertext || tag``.

    The header and the context are the AAD; the key needs the password and the pepper.
    """
    return _seal_with_password_and_pepper_fixed(
        password,
        plaintext,
        context,
        pepper,
        params,
        secrets.token_bytes(PASSWORD_SALT_BYTES),
        secrets.token_bytes(NONCE_BYTES),
    )


def _pepper_by_id(identifier: bytes, peppers: tuple[bytes, ...]) -> bytes:
    for pepper in peppers:
        if hmac.compare_digest(pepper_id(pepper), identifier):
            return pepper
    # Not a DecryptionError: a wrong password and a missing pepper need different fixes.
    raise UnsupportedFormatError("sealed with a key pepper that is not configured (RUECKHALT_KEY_PEPPER)")


def wrap_legacy_seal(sealed_v1: bytes, context: Context, pepper: bytes) -> bytes:
    """Format v3: a v1 value (password only) sealed once more under the pepper, for the data migration.

    The migration cannot re-seal a v1 value as v2 without the password; wrapping it under the pepper closes
    offline guessing at once, and the owner's next sign-in replaces it with a proper v2 value.
    ``0x03 || pepper id(4) || seal(HKDF(pepper, info=label), v1 value, context)``.
    """
    if not sealed_v1 or sealed_v1[0] != VERSION:
        raise ValueError("only a format v1 value is wrapped")
    key = hkdf_sha256(pepper, None, _LEGACY_WRAP_LABEL)
    return bytes([LEGACY_WRAPPED_VERSION]) + pepper_id(pepper) + seal(key, sealed_v1, context)


def open_with_password_and_pepper(
    password: str, sealed: bytes, context: Context, peppers: tuple[bytes, ...]
) -> bytes:
    """Open a v2 value, or a v3 (migrated v1) value; a bare v1 value is refused (the migration wraps all).

    ``peppers`` are the current pepper first, then a previous one during a rotation.
    """
    if len(sealed) < 1:
        raise DecryptionError("password-sealed data is empty")
    if sealed[0] == LEGACY_WRAPPED_VERSION:
        if len(sealed) < 1 + PEPPER_ID_BYTES:
            raise DecryptionError("password-sealed data is truncated")
        pepper = _pepper_by_id(sealed[1 : 1 + PEPPER_ID_BYTES], peppers)
        inner = open_sealed(
            hkdf_sha256(pepper, None, _LEGACY_WRAP_LABEL), sealed[1 + PEPPER_ID_BYTES :], context
        )
        return open_with_password(password, inner, context)
    if sealed[0] != PEPPERED_VERSION:
        raise UnsupportedFormatError(f"unsupported password-sealed format version {sealed[0]}")
    header_bytes = 1 + _PARAMS_BYTES + PASSWORD_SALT_BYTES + PEPPER_ID_BYTES
    if len(sealed) < header_bytes + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("password-sealed data is truncated")
    try:
        params = Argon2Params.decode(sealed[1 : 1 + _PARAMS_BYTES])
    except ValueError:
        raise DecryptionError("password-sealed data has parameters out of bounds") from None
    header = sealed[:header_bytes]
    salt = sealed[1 + _PARAMS_BYTES : 1 + _PARAMS_BYTES + PASSWORD_SALT_BYTES]
    pepper = _pepper_by_id(sealed[header_bytes - PEPPER_ID_BYTES : header_bytes], peppers)
    key = _peppered_key(password, salt, params, pepper, header)
    nonce = sealed[header_bytes : header_bytes + NONCE_BYTES]
    return gcm_decrypt(
        key, nonce, sealed[header_bytes + NONCE_BYTES :], _PEPPERED_LABEL + header + context.encode()
    )


def sealed_needs_reseal(sealed: bytes, pepper: bytes, params: Argon2Params) -> bool:
    """Whether a value should be sealed again at its owner's next sign-in: a migrated v1 value, another
    pepper (rotation) or other Argon2 parameters than today's."""
    if (
        len(sealed) < 1 + _PARAMS_BYTES + PASSWORD_SALT_BYTES + PEPPER_ID_BYTES
        or sealed[0] != PEPPERED_VERSION
    ):
        return True
    header_end = 1 + _PARAMS_BYTES + PASSWORD_SALT_BYTES + PEPPER_ID_BYTES
    if not hmac.compare_digest(sealed[header_end - PEPPER_ID_BYTES : header_end], pepper_id(pepper)):
        return True
    try:
        return Argon2Params.decode(sealed[1 : 1 + _PARAMS_BYTES]) != params
    except ValueError:
        return True
