"""Chunked attachment encryption: round trips and every way to cut, reorder or splice a stream."""

from __future__ import annotations

import dataclasses
import io
import itertools
import struct
import typing

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from service.crypto import (
    DEFAULT_CHUNK_BYTES,
    Context,
    DecryptionError,
    StreamSealer,
    UnsupportedFormatError,
    new_data_key,
    open_stream,
    seal_stream,
)

FAST = settings(database=None, deadline=None, max_examples=150)
KEY = bytes(range(32))
CONTEXT = Context("attachment", "case-1", "", "attachment-1")
CHUNK = 16
HEADER = 40
RECORD = CHUNK + 16


def sealed_bytes(plaintext: bytes, chunk_bytes: int = CHUNK, context: Context = CONTEXT) -> bytes:
    sink = io.BytesIO()
    seal_stream(KEY, context, io.BytesIO(plaintext), sink, chunk_bytes)
    return sink.getvalue()


def opened(sealed: bytes, key: bytes = KEY, context: Context = CONTEXT) -> bytes:
    return b"".join(open_stream(key, context, io.BytesIO(sealed)))


def split(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER:]
    return sealed[:HEADER], [body[i : i + RECORD] for i in range(0, len(body), RECORD)]


class Trickle(io.RawIOBase):
    """A source that returns at most three bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 3) if size >= 0 else 3)


@FAST
@given(st.binary(max_size=2000), st.integers(1, 100))
def test_round_trip(plaintext: bytes, chunk_bytes: int) -> None:
    sink = io.BytesIO()
    assert seal_stream(KEY, CONTEXT, io.BytesIO(plaintext), sink, chunk_bytes) == len(plaintext)
    chunks = list(open_stream(KEY, CONTEXT, io.BytesIO(sink.getvalue())))
    assert b"".join(chunks) == plaintext
    assert all(len(chunk) == chunk_bytes for chunk in chunks[:-1])
    assert 0 <= len(chunks[-1]) <= chunk_bytes


@FAST
@given(st.binary(max_size=1500), st.integers(1, 64), st.lists(st.integers(0, 1500), max_size=12))
def test_write_split_points_do_not_matter(plaintext: bytes, chunk_bytes: int, cuts: list[int]) -> None:
    """Given an upload arriving in pieces of any size, the output equals sealing it in one piece."""
    salt = bytes(range(32))
    bounds = [0, *sorted(min(cut, len(plaintext)) for cut in cuts), len(plaintext)]
    pieced, whole = io.BytesIO(), io.BytesIO()
    sealer = StreamSealer(KEY, CONTEXT, pieced, chunk_bytes, _salt=salt)
    for start, end in itertools.pairwise(bounds):
        sealer.write(plaintext[start:end])
    assert sealer.close() == len(plaintext)
    one = StreamSealer(KEY, CONTEXT, whole, chunk_bytes, _salt=salt)
    one.write(plaintext)
    one.close()
    assert pieced.getvalue() == whole.getvalue()
    assert opened(pieced.getvalue()) == plaintext


def test_empty_input_is_one_empty_final_chunk() -> None:
    sealed = sealed_bytes(b"")
    assert len(sealed) == HEADER + 16
    assert list(open_stream(KEY, CONTEXT, io.BytesIO(sealed))) == [b""]


def test_exact_multiple_ends_with_a_full_final_chunk() -> None:
    """Given 2 full chunks of input, there are exactly two chunks, the second one final."""
    sealed = sealed_bytes(bytes(2 * CHUNK))
    assert len(sealed) == HEADER + 2 * RECORD
    assert opened(sealed) == bytes(2 * CHUNK)


def test_layout_matches_the_documented_format() -> None:
    """Given a sealed stream, an independent implementation of the documented layout opens it."""
    plaintext = bytes(range(40))
    sealed = sealed_bytes(plaintext)
    header, records = split(sealed)
    assert header[:4] == b"RHS\x01"
    assert struct.unpack(">I", header[4:8]) == (CHUNK,)
    subkey = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=header[8:40],
        info=b"rueckhalt/stream/v1" + CONTEXT.encode(),
    ).derive(KEY)
    out = b""
    for index, record in enumerate(records):
        final = index == len(records) - 1
        nonce = index.to_bytes(8, "big") + bytes([final]) + b"\x00\x00\x00"
        aad = header + index.to_bytes(8, "big") + bytes([final])
        out += AESGCM(subkey).decrypt(nonce, record, aad)
    assert out == plaintext
    assert len(records) == 3


def test_default_chunk_size() -> None:
    assert DEFAULT_CHUNK_BYTES == 64 * 1024
    data = bytes(range(256)) * 600
    sealed = sealed_bytes(data, DEFAULT_CHUNK_BYTES)
    assert struct.unpack(">I", sealed[4:8]) == (65536,)
    assert len(sealed) == HEADER + len(data) + 3 * 16
    assert opened(sealed) == data


def test_salt_is_random_per_stream() -> None:
    assert sealed_bytes(b"same")[8:40] != sealed_bytes(b"same")[8:40]


def test_short_reads_from_the_source_are_handled() -> None:
    data = bytes(range(200))
    sealed = sealed_bytes(data)
    source = typing.cast(typing.BinaryIO, Trickle(sealed))
    assert b"".join(open_stream(KEY, CONTEXT, source)) == data
    sink = io.BytesIO()
    assert seal_stream(KEY, CONTEXT, typing.cast(typing.BinaryIO, Trickle(data)), sink, CHUNK) == len(data)
    assert opened(sink.getvalue()) == data


def test_sealer_counts_and_refuses_late_writes() -> None:
    sink = io.BytesIO()
    sealer = StreamSealer(KEY, CONTEXT, sink, CHUNK)
    assert sink.getvalue()[:4] == b"RHS\x01"
    sealer.write(b"abc")
    sealer.write(bytearray(b"def"))
    sealer.write(memoryview(b"ghi"))
    assert sealer.close() == 9
    assert sealer.close() == 9
    with pytest.raises(ValueError, match="closed"):
        sealer.write(b"more")
    assert opened(sink.getvalue()) == b"abcdefghi"


@pytest.mark.parametrize("chunk_bytes", [0, -1, 16 * 1024 * 1024 + 1])
def test_invalid_chunk_size_is_refused_when_sealing(chunk_bytes: int) -> None:
    with pytest.raises(ValueError, match="chunk_bytes"):
        StreamSealer(KEY, CONTEXT, io.BytesIO(), chunk_bytes)


def test_header_and_first_chunk_are_checked_before_anything_is_yielded() -> None:
    """Given a stream under the wrong key, open_stream fails at once, before a response starts."""
    with pytest.raises(DecryptionError):
        open_stream(new_data_key(), CONTEXT, io.BytesIO(sealed_bytes(b"data")))


# -- tampering --------------------------------------------------------------------------------------------

PLAINTEXT = bytes(range(70))  # 5 chunks: 4 full, a 6-byte final one
SEALED = sealed_bytes(PLAINTEXT)


def test_fixture_has_five_chunks() -> None:
    assert len(split(SEALED)[1]) == 5


@FAST
@given(st.integers(0, len(SEALED) * 8 - 1))
def test_any_bit_flip_is_detected(position: int) -> None:
    tampered = bytearray(SEALED)
    tampered[position // 8] ^= 1 << (position % 8)
    with pytest.raises(DecryptionError):
        opened(bytes(tampered))


def test_wrong_key_fails() -> None:
    with pytest.raises(DecryptionError):
        opened(SEALED, key=new_data_key())


@pytest.mark.parametrize("field", ["purpose", "case_id", "field", "record_id"])
def test_any_other_context_field_fails(field: str) -> None:
    other = dataclasses.replace(CONTEXT, **{field: getattr(CONTEXT, field) + "x"})
    with pytest.raises(DecryptionError):
        opened(SEALED, context=other)


def test_blob_moved_to_another_attachment_fails() -> None:
    with pytest.raises(DecryptionError):
        opened(SEALED, context=Context("attachment", "case-1", "", "attachment-2"))


@pytest.mark.parametrize(("first", "second"), [(0, 1), (1, 2), (2, 3), (3, 4)])
def test_reordered_chunks_fail(first: int, second: int) -> None:
    header, records = split(SEALED)
    records[first], records[second] = records[second], records[first]
    with pytest.raises(DecryptionError):
        opened(header + b"".join(records))


def test_dropped_last_chunk_fails_at_the_end() -> None:
    """Given a stream cut at a chunk boundary, every chunk before the cut is yielded, then it fails."""
    header, records = split(SEALED)
    chunks = open_stream(KEY, CONTEXT, io.BytesIO(header + b"".join(records[:-1])))
    assert b"".join(next(chunks) for _ in range(3)) == PLAINTEXT[: 3 * CHUNK]
    with pytest.raises(DecryptionError, match="chunk 3"):
        next(chunks)


@pytest.mark.parametrize("dropped", [0, 1, 2, 3])
def test_dropped_middle_chunk_fails(dropped: int) -> None:
    header, records = split(SEALED)
    del records[dropped]
    with pytest.raises(DecryptionError):
        opened(header + b"".join(records))


def test_duplicated_chunk_fails() -> None:
    header, records = split(SEALED)
    records.insert(2, records[1])
    with pytest.raises(DecryptionError):
        opened(header + b"".join(records))


@pytest.mark.parametrize("extra", [b"\x00", b"x" * 16, b"y" * RECORD, b"z" * (RECORD + 5)])
def test_appended_data_fails(extra: bytes) -> None:
    with pytest.raises(DecryptionError):
        opened(SEALED + extra)


def test_appended_chunk_from_another_stream_fails() -> None:
    """Given the final chunk of a second stream spliced onto the first, the first no longer opens."""
    other = sealed_bytes(bytes(10))
    with pytest.raises(DecryptionError):
        opened(SEALED + split(other)[1][-1])


def test_non_final_chunk_made_last_fails() -> None:
    """Given the final chunk replaced by empty data, the last non-final chunk cannot pose as final."""
    header, records = split(sealed_bytes(bytes(2 * CHUNK + 1)))
    with pytest.raises(DecryptionError):
        opened(header + records[0] + records[1])


def test_swapped_header_fails() -> None:
    """Given the header of another stream under the same key and context, no chunk opens."""
    other_header, _ = split(sealed_bytes(PLAINTEXT))
    _, records = split(SEALED)
    with pytest.raises(DecryptionError):
        opened(other_header + b"".join(records))


@pytest.mark.parametrize("size", [1, 8, 15, 17, 32, 65536])
def test_wrong_chunk_size_in_header_fails(size: int) -> None:
    tampered = SEALED[:4] + struct.pack(">I", size) + SEALED[8:]
    with pytest.raises(DecryptionError):
        opened(tampered)


@pytest.mark.parametrize("size", [0, 16 * 1024 * 1024 + 1, 0xFFFFFFFF])
def test_absurd_chunk_size_in_header_is_refused_before_reading(size: int) -> None:
    tampered = SEALED[:4] + struct.pack(">I", size) + SEALED[8:]
    with pytest.raises(DecryptionError, match="chunk size"):
        opened(tampered)


@pytest.mark.parametrize("keep", [0, 2, 3, 4, 20, 39, 40, 41, 55, 56, HEADER + RECORD + 3, len(SEALED) - 1])
def test_truncated_stream_fails(keep: int) -> None:
    with pytest.raises(DecryptionError):
        opened(SEALED[:keep])


def test_wrong_magic_fails() -> None:
    with pytest.raises(DecryptionError, match="not an encrypted stream"):
        opened(b"PK\x03\x04" + SEALED[4:])


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_unknown_version_is_refused_clearly(version: int) -> None:
    with pytest.raises(UnsupportedFormatError, match=f"version {version}"):
        opened(SEALED[:3] + bytes([version]) + SEALED[4:])
