"""Chunked encryption of attachments (STREAM construction, Hoang-Reyhanitabar-Rogaway-Vizár 2015).

Layout v1::

    header  = b"RHS" || 0x01 || chunk size (u32 BE) || salt (32)
    chunk i = AES-256-GCM(subkey, nonce_i, plaintext_i, AAD = header || i (u64 BE) || final flag)
    nonce_i = i (u64 BE) || final flag || 00 00 00

The subkey is HKDF(data key, salt, info = label || context), so every file has its own key and nonces
can be counters. Every chunk but the last holds exactly ``chunk size`` plaintext bytes; the last one has
the final flag set and holds 0..chunk size bytes (an empty file is one empty final chunk). The header is
in every chunk's AAD, so a changed chunk size or a swapped header fails at the first chunk; the index and
final flag catch reordering, truncation and appended data.
"""

from __future__ import annotations

import os
import struct
import typing
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.crypto.aead import TAG_BYTES, check_key
from service.crypto.context import Context
from service.crypto.errors import DecryptionError, UnsupportedFormatError
from service.crypto.keyed import hkdf_sha256

DEFAULT_CHUNK_BYTES = 64 * 1024
# The reader allocates a chunk before it can authenticate it: bound what a forged header can make it allocate.
MAX_CHUNK_BYTES = 16 * 1024 * 1024
MAGIC = b"RHS"
VERSION = 1
SALT_BYTES = 32
HEADER_BYTES = len(MAGIC) + 1 + 4 + SALT_BYTES
_INFO_PREFIX = b"rueckhalt/stream/v1"


def _check_chunk_bytes(chunk_bytes: int) -> None:
    if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be between 1 and {MAX_CHUNK_BYTES}")


def _subkey(key: bytes, salt: bytes, context: Context) -> AESGCM:
    return AESGCM(hkdf_sha256(key, salt, _INFO_PREFIX + context.encode()))


def _nonce(index: int, final: bool) -> bytes:
    return struct.pack(">QB3x", index, final)


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, final)


class StreamSealer:
    """Encrypts an upload that arrives in pieces of any size; ``close()`` must be called to finish it."""

    def __init__(
        self,
        key: bytes,
        context: Context,
        sink: typing.BinaryIO,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        *,
        _salt: bytes | None = None,
    ) -> None:
        check_key(key)
        _check_chunk_bytes(chunk_bytes)
        salt = os.urandom(SALT_BYTES) if _salt is None else _salt
        if len(salt) != SALT_BYTES:
            raise ValueError(f"salt must be {SALT_BYTES} bytes")
        self._header = MAGIC + bytes([VERSION]) + struct.pack(">I", chunk_bytes) + salt
        self._aead = _subkey(key, salt, context)
        self._sink = sink
        self._chunk_bytes = chunk_bytes
        self._buffer = bytearray()
        self._index = 0
        self._count = 0
        self._closed = False
        sink.write(self._header)

    def _emit(self, plaintext: bytes | memoryview, final: bool) -> None:
        aad = _aad(self._header, self._index, final)
        self._sink.write(self._aead.encrypt(_nonce(self._index, final), plaintext, aad))
        self._index += 1

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a closed StreamSealer")
        self._buffer.extend(data)
        self._count += len(data)
        size = self._chunk_bytes
        # Strictly more than one chunk: the last full chunk may turn out to be the final one.
        if len(self._buffer) <= size:
            return
        done = 0
        with memoryview(self._buffer) as view:
            while len(self._buffer) - done > size:
                self._emit(view[done : done + size], final=False)
                done += size
        del self._buffer[:done]

    def close(self) -> int:
        """Write the final chunk; return the plaintext byte count. Calling it again only returns the count."""
        if not self._closed:
            self._emit(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._closed = True
        return self._count


def seal_stream(
    key: bytes,
    context: Context,
    source: typing.BinaryIO,
    sink: typing.BinaryIO,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> int:
    sealer = StreamSealer(key, context, sink, chunk_bytes)
    while piece := source.read(chunk_bytes):
        sealer.write(piece)
    return sealer.close()


def _read_exact(source: typing.BinaryIO, size: int) -> bytes:
    # Pipes and sockets may return short reads before the end.
    parts: list[bytes] = []
    missing = size
    while missing > 0:
        piece = source.read(missing)
        if not piece:
            break
        parts.append(piece)
        missing -= len(piece)
    return b"".join(parts)


def _parse_header(source: typing.BinaryIO) -> tuple[bytes, int, bytes]:
    header = _read_exact(source, HEADER_BYTES)
    if len(header) < len(MAGIC) + 1 or header[: len(MAGIC)] != MAGIC:
        raise DecryptionError("not an encrypted stream")
    if header[len(MAGIC)] != VERSION:
        raise UnsupportedFormatError(f"unsupported stream format version {header[len(MAGIC)]}")
    if len(header) < HEADER_BYTES:
        raise DecryptionError("stream header is truncated")
    (chunk_bytes,) = struct.unpack(">I", header[len(MAGIC) + 1 : len(MAGIC) + 5])
    if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise DecryptionError("stream header has an invalid chunk size")
    return header, chunk_bytes, header[len(MAGIC) + 5 :]


def open_stream(key: bytes, context: Context, source: typing.BinaryIO) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk.

    The header and the first chunk are checked before this returns, so a response can still fail cleanly
    before its first byte is sent. Later problems raise DecryptionError from the iterator, a truncated
    stream only at the end: a consumer must read to the end before it trusts what it got.
    """
    check_key(key)
    header, chunk_bytes, salt = _parse_header(source)
    aead = _subkey(key, salt, context)
    record_bytes = chunk_bytes + TAG_BYTES

    def chunks() -> Iterator[bytes]:
        index = 0
        current = _read_exact(source, record_bytes)
        while True:
            # A record is final exactly when nothing follows it; the flag in the AAD makes the writer agree.
            following = _read_exact(source, record_bytes) if len(current) == record_bytes else b""
            final = not following
            if len(current) < TAG_BYTES:
                raise DecryptionError(f"stream is truncated at chunk {index}")
            try:
                plaintext = aead.decrypt(_nonce(index, final), current, _aad(header, index, final))
            except InvalidTag:
                raise DecryptionError(
                    f"stream chunk {index} could not be opened (wrong key or context, tampered, reordered "
                    "or truncated)"
                ) from None
            yield plaintext
            if final:
                return
            index += 1
            current = following

    iterator = chunks()
    first = next(iterator)

    def rest() -> Iterator[bytes]:
        yield first
        yield from iterator

    return rest()
