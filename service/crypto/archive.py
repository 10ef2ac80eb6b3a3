"""Backup archives: a random archive key wrapped (HPKE) to the operator's offline backup key, the body in
the chunked stream format of attachments (``stream.py``) under that key.

Format v1 (docs/crypto-formats.md, "Backup archive")::

    header = b"RHBK" || 0x01 || key id (8) || wrap_key(archive key) (1,169)
    body   = stream v1 under the archive key, 1 MiB chunks,
             context ("backup_archive", field = hex SHA-256(header))
    key id = SHA-256("rueckhalt/backup-key-id/v1" || backup public key)[:8]

The wrap is bound to ``("backup_key", field = hex key id)`` and the body to the whole header, so a header
moved onto another body (or a changed key id) fails to open. The stream gives every chunk its index and a
final flag in the associated data: a flipped byte, a reordered, dropped or appended chunk and a cut end are
all refused. Anyone can encrypt to a public key, so this proves only confidentiality; the backup's manifest
carries a MAC under a server secret for authenticity (``service/backup``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import typing
from collections.abc import Iterator

from service.crypto.aead import new_data_key
from service.crypto.context import Context
from service.crypto.errors import CryptoError, DecryptionError, UnsupportedFormatError
from service.crypto.hpke import WRAPPED_KEY_BYTES, PrivateKey, PublicKey, unwrap_key, wrap_key
from service.crypto.stream import StreamSealer, _read_exact, open_stream

MAGIC = b"RHBK"
VERSION = 1
KEY_ID_BYTES = 8
HEADER_BYTES = len(MAGIC) + 1 + KEY_ID_BYTES + WRAPPED_KEY_BYTES
ARCHIVE_CHUNK_BYTES = 1024 * 1024
_KEY_ID_LABEL = b"rueckhalt/backup-key-id/v1"
# Text forms of the backup key pair: a prefix names what a line is, so a public key pasted where the private
# one belongs (or the other way round) is told apart before anything is tried.
PUBLIC_PREFIX = "rueckhalt-backup-public-v1:"
PRIVATE_PREFIX = "rueckhalt-backup-private-v1:"


class ArchiveKeyMismatch(DecryptionError):
    """The archive was encrypted to another backup key than the one given."""

    def __init__(self, archive_key_id: str, given_key_id: str) -> None:
        super().__init__(f"archive is for backup key {archive_key_id}, the key given is {given_key_id}")
        self.archive_key_id = archive_key_id
        self.given_key_id = given_key_id


class ArchiveDamaged(DecryptionError):
    """A chunk did not open: changed, reordered, cut short or with data appended. ``chunk`` counts from 0."""

    def __init__(self, chunk: int) -> None:
        super().__init__(
            f"archive chunk {chunk} could not be opened (changed, reordered, cut short or extended)"
        )
        self.chunk = chunk


def backup_key_id(public: PublicKey) -> str:
    """16 hex characters that name a backup key pair (printed by keygen, stored in each archive's header)."""
    return hashlib.sha256(_KEY_ID_LABEL + public.raw).digest()[:KEY_ID_BYTES].hex()


def encode_public_key(public: PublicKey) -> str:
    return PUBLIC_PREFIX + base64.b64encode(public.raw).decode("ascii")


def encode_private_key(private: PrivateKey) -> str:
    return PRIVATE_PREFIX + base64.b64encode(private.raw).decode("ascii")


def _decode(text: str, prefix: str, what: str) -> bytes:
    # Comment lines (#) and blank lines are allowed around the key, so a key file can say what it is.
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    found = [line for line in lines if line.startswith(prefix)]
    if len(found) != 1:
        other = PRIVATE_PREFIX if prefix == PUBLIC_PREFIX else PUBLIC_PREFIX
        if any(line.startswith(other) for line in lines):
            raise CryptoError(f"this is not a {what} (it is the other half of the key pair)")
        raise CryptoError(f"no {what} found (a line starting with {prefix!r})")
    try:
        return base64.b64decode(found[0][len(prefix) :], validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError(f"the {what} is not valid base64") from None


def decode_public_key(text: str) -> PublicKey:
    return PublicKey.from_bytes(_decode(text, PUBLIC_PREFIX, "backup public key"))


def decode_private_key(text: str) -> PrivateKey:
    return PrivateKey.from_bytes(_decode(text, PRIVATE_PREFIX, "backup private key"))


def _wrap_context(key_id: bytes) -> Context:
    return Context("backup_key", field=key_id.hex())


def _body_context(header: bytes) -> Context:
    return Context("backup_archive", field=hashlib.sha256(header).hexdigest())


class ArchiveWriter:
    """Encrypts a backup as it is written; ``close()`` writes the final chunk (without it the archive is
    refused as cut short)."""

    def __init__(
        self, recipient: PublicKey, sink: typing.BinaryIO, chunk_bytes: int = ARCHIVE_CHUNK_BYTES
    ) -> None:
        archive_key = new_data_key()
        key_id = bytes.fromhex(backup_key_id(recipient))
        header = MAGIC + bytes([VERSION]) + key_id + wrap_key(archive_key, recipient, _wrap_context(key_id))
        sink.write(header)
        self._stream = StreamSealer(archive_key, _body_context(header), sink, chunk_bytes)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._stream.write(data)
        return len(data)

    def close(self) -> int:
        """Finish the archive; returns the plaintext byte count."""
        return self._stream.close()


def read_key_id(source: typing.BinaryIO) -> tuple[bytes, str]:
    """Read and check the header's fixed part; returns the header and the key id it names."""
    header = _read_exact(source, HEADER_BYTES)
    if len(header) < len(MAGIC) + 1 or header[: len(MAGIC)] != MAGIC:
        raise DecryptionError("not a Rückhalt backup archive")
    if header[len(MAGIC)] != VERSION:
        raise UnsupportedFormatError(f"unsupported backup archive format version {header[len(MAGIC)]}")
    if len(header) < HEADER_BYTES:
        raise ArchiveDamaged(0)
    return header, header[len(MAGIC) + 1 : len(MAGIC) + 1 + KEY_ID_BYTES].hex()


class ArchiveReader:
    """The decrypted body as a readable stream (``read(n)``), chunk by chunk.

    Every chunk is authenticated before its bytes are returned, but a cut end shows only at the last read:
    a consumer must read to the end (``read()`` returning b"") before it trusts anything it got.
    """

    def __init__(self, private: PrivateKey, source: typing.BinaryIO) -> None:
        header, key_id = read_key_id(source)
        given = backup_key_id(private.public_key())
        if key_id != given:
            raise ArchiveKeyMismatch(key_id, given)
        wrapped = header[len(MAGIC) + 1 + KEY_ID_BYTES :]
        try:
            archive_key = unwrap_key(wrapped, private, _wrap_context(bytes.fromhex(key_id)))
        except DecryptionError:
            raise ArchiveDamaged(0) from None
        self._chunk = 0
        try:
            self._chunks: Iterator[bytes] = open_stream(archive_key, _body_context(header), source)
        except DecryptionError:
            raise ArchiveDamaged(0) from None
        self._buffer = b""
        self._offset = 0
        self._done = False

    @property
    def chunks_read(self) -> int:
        return self._chunk

    def _fill(self) -> bool:
        if self._done:
            return False
        try:
            self._buffer = next(self._chunks)
        except StopIteration:
            self._done = True
            return False
        except DecryptionError:
            raise ArchiveDamaged(self._chunk) from None
        self._chunk += 1
        self._offset = 0
        return True

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size if size >= 0 else None
        while wanted is None or wanted > 0:
            if self._offset >= len(self._buffer) and not self._fill():
                break
            end = len(self._buffer) if wanted is None else min(len(self._buffer), self._offset + wanted)
            piece = self._buffer[self._offset : end]
            self._offset = end
            parts.append(piece)
            if wanted is not None:
                wanted -= len(piece)
        return b"".join(parts)
