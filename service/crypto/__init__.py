"""Rückhalt's cryptography: the only package that may import ``cryptography.hazmat``.

Every ciphertext starts with a format version and is bound to a Context (associated data or HPKE info).
Formats and their version bytes are part of the stored data: change them only by adding a new version.
"""

from service.crypto.aead import DATA_KEY_BYTES, new_data_key, open_sealed, seal
from service.crypto.context import Context
from service.crypto.errors import CryptoError, DecryptionError, InvalidReceipt, UnsupportedFormatError
from service.crypto.hpke import (
    PrivateKey,
    PublicKey,
    generate_keypair,
    keypair_from_seed,
    open_private_key,
    seal_private_key,
    unwrap_key,
    unwrap_private_key,
    wrap_key,
    wrap_private_key,
)
from service.crypto.keyed import constant_time_equal, keyed_hash
from service.crypto.passwords import (
    Argon2Params,
    derive_password_key,
    hash_password,
    needs_rehash,
    open_with_password,
    open_with_password_and_pepper,
    pepper_id,
    seal_with_password,
    seal_with_password_and_pepper,
    sealed_needs_reseal,
    verify_password,
    wrap_legacy_seal,
)
from service.crypto.receipt import (
    RECEIPT_CHARS,
    format_receipt,
    new_receipt,
    new_salt,
    normalize_receipt,
    receipt_lookup,
    unwrap_for_reporter,
    wrap_for_reporter,
)
from service.crypto.recovery import new_recovery_key, recovery_wrapping_key
from service.crypto.shamir import Share, combine_shares, parse_share, split_secret
from service.crypto.stream import DEFAULT_CHUNK_BYTES, StreamSealer, open_stream, seal_stream
from service.crypto.totp import (
    new_totp_secret,
    totp_code,
    totp_secret_base32,
    totp_secret_from_base32,
    totp_uri,
    verify_totp,
)
from service.crypto.webhook import sign_webhook, verify_webhook, webhook_secret

__all__ = [
    "DATA_KEY_BYTES",
    "DEFAULT_CHUNK_BYTES",
    "RECEIPT_CHARS",
    "Argon2Params",
    "Context",
    "CryptoError",
    "DecryptionError",
    "InvalidReceipt",
    "PrivateKey",
    "PublicKey",
    "Share",
    "StreamSealer",
    "UnsupportedFormatError",
    "combine_shares",
    "constant_time_equal",
    "derive_password_key",
    "format_receipt",
    "generate_keypair",
    "hash_password",
    "keyed_hash",
    "keypair_from_seed",
    "needs_rehash",
    "new_data_key",
    "new_receipt",
    "new_recovery_key",
    "new_salt",
    "new_totp_secret",
    "normalize_receipt",
    "open_private_key",
    "open_sealed",
    "open_stream",
    "open_with_password",
    "open_with_password_and_pepper",
    "parse_share",
    "pepper_id",
    "receipt_lookup",
    "recovery_wrapping_key",
    "seal",
    "seal_private_key",
    "seal_stream",
    "seal_with_password",
    "seal_with_password_and_pepper",
    "sealed_needs_reseal",
    "sign_webhook",
    "split_secret",
    "totp_code",
    "totp_secret_base32",
    "totp_secret_from_base32",
    "totp_uri",
    "unwrap_for_reporter",
    "unwrap_key",
    "unwrap_private_key",
    "verify_password",
    "verify_totp",
    "verify_webhook",
    "webhook_secret",
    "wrap_for_reporter",
    "wrap_key",
    "wrap_legacy_seal",
    "wrap_private_key",
]
