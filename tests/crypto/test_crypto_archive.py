"""The backup archive format (service/crypto/archive.py): only the backup private key opens it, and every
change to the bytes (header, a chunk, their order, the end) is refused before it is trusted."""

from __future__ import annotations

import io

import pytest

from service.crypto import (
    ArchiveDamaged,
    ArchiveKeyMismatch,
    ArchiveReader,
    ArchiveWriter,
    CryptoError,
    backup_key_id,
    decode_private_key,
    decode_public_key,
    encode_private_key,
    encode_public_key,
    generate_keypair,
)
from service.crypto.archive import HEADER_BYTES
from service.crypto.stream import HEADER_BYTES as STREAM_HEADER_BYTES

CHUNK = 64
RECORD = CHUNK + 16
PLAIN = bytes(range(256)) * 3  # 12 chunks of 64 bytes: the last one is full and final


def sealed(plain: bytes = PLAIN) -> tuple[bytes, object]:
    private, public = generate_keypair()
    out = io.BytesIO()
    writer = ArchiveWriter(public, out, chunk_bytes=CHUNK)
    writer.write(plain[:100])
    writer.write(plain[100:])
    assert writer.close() == len(plain)
    return out.getvalue(), private


def opened(data: bytes, private: object) -> bytes:
    reader = ArchiveReader(private, io.BytesIO(data))  # type: ignore[arg-type]
    parts = []
    while piece := reader.read(50):
        parts.append(piece)
    return b"".join(parts)


def test_the_private_key_opens_what_was_written_in_any_pieces() -> None:
    data, private = sealed()
    assert opened(data, private) == PLAIN
    assert PLAIN[:32] not in data


def test_another_key_is_named_by_its_key_id() -> None:
    data, _private = sealed()
    other, other_public = generate_keypair()
    with pytest.raises(ArchiveKeyMismatch) as refused:
        opened(data, other)
    assert refused.value.given_key_id == backup_key_id(other_public)
    assert refused.value.archive_key_id == data[5:13].hex()


@pytest.mark.parametrize(
    "where", ["wrapped_key", "stream_header", "first_chunk", "middle_chunk", "last_chunk"]
)
def test_a_flipped_bit_anywhere_is_refused(where: str) -> None:
    data, private = sealed()
    body = HEADER_BYTES + STREAM_HEADER_BYTES
    offset = {
        "wrapped_key": HEADER_BYTES - 20,
        "stream_header": HEADER_BYTES + 10,
        "first_chunk": body + 3,
        "middle_chunk": body + 5 * RECORD + 7,
        "last_chunk": len(data) - 1,
    }[where]
    changed = bytearray(data)
    changed[offset] ^= 0x04
    with pytest.raises(ArchiveDamaged):
        opened(bytes(changed), private)


@pytest.mark.parametrize("change", ["last_chunk_cut", "chunks_swapped", "chunk_appended", "chunk_dropped"])
def test_cut_reordered_or_extended_archives_are_refused(change: str) -> None:
    data, private = sealed()
    body = HEADER_BYTES + STREAM_HEADER_BYTES
    head, records = data[:body], [data[i : i + RECORD] for i in range(body, len(data), RECORD)]
    if change == "last_chunk_cut":
        records = records[:-1]
    elif change == "chunks_swapped":
        records[2], records[3] = records[3], records[2]
    elif change == "chunk_appended":
        records.append(records[-1])
    else:
        del records[4]
    with pytest.raises(ArchiveDamaged):
        opened(head + b"".join(records), private)


def test_key_texts_round_trip_and_the_halves_are_not_confused() -> None:
    private, public = generate_keypair()
    assert decode_public_key(encode_public_key(public)) == public
    assert decode_private_key(f"# comment\n\n{encode_private_key(private)}\n") == private
    with pytest.raises(CryptoError, match="other half"):
        decode_private_key(encode_public_key(public))
    with pytest.raises(CryptoError, match="other half"):
        decode_public_key(encode_private_key(private))
