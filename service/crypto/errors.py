"""Exceptions of the crypto package.

Messages name what failed, never key or plaintext material, and never echo user input: they end up in
logs and error pages.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base of every error raised by ``service.crypto`` on purpose."""


class DecryptionError(CryptoError):
    """A ciphertext could not be opened.

    Wrong key or context, tampered, truncated, reordered, or an unknown format version.
    """


class UnsupportedFormatError(DecryptionError):
    """A ciphertext carries a format version this code does not know (written by a newer release?)."""


class InvalidReceipt(ValueError):
    """Text that cannot be a receipt (or recovery key): wrong length or characters."""
