"""Builders of the corpus: hostile files (polyglots, bombs, images with metadata) and hostile JSON bodies.

Files are made here rather than checked in: a decompression bomb is a few hundred bytes, but a JPEG with
GPS data or a zip bomb is clearer as the code that makes it, and the marker of each test goes inside.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

from PIL import Image, PngImagePlugin

# GPS tags of EXIF (the GPS IFD is 0x8825): latitude and longitude of Berlin's Rotes Rathaus.
GPS_IFD = 0x8825
GPS = {1: "N", 2: (52.0, 31.0, 7.0), 3: "E", 4: (13.0, 24.0, 29.0)}
CAMERA_MAKE = 0x010F


def expand(text: str, marker: str) -> str:
    """{marker} and {long:N} (N letters); plain replacement, so the braces of hostile text stay as sent."""
    text = text.replace("{marker}", marker)
    while "{long:" in text:
        start = text.index("{long:")
        end = text.index("}", start)
        text = text[:start] + "x" * int(text[start + 6 : end]) + text[end + 1 :]
    return text


# -- files ------------------------------------------------------------------------------------------------


def _image(size: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> Image.Image:
    return Image.new("RGB", (size, size), color)


def gif_html_text(marker: str) -> bytes:
    """Text that starts like a GIF: the classic GIF/JavaScript polyglot header, all ASCII."""
    return f"GIF89a/*\x0a<script>alert('{marker}')</script>*/=1;".encode()


def gif_html_binary(marker: str) -> bytes:
    out = io.BytesIO()
    _image(8).save(out, format="GIF")
    return out.getvalue() + f"<html><script>alert('{marker}')</script></html>".encode()


def pdf_with_js(marker: str) -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R /OpenAction 3 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
        b"3 0 obj << /S /JavaScript /JS (app.alert\\('" + marker.encode() + b"'\\)) >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


def html_page(marker: str) -> bytes:
    return f"<!doctype html><html><body><script>alert('{marker}')</script></body></html>".encode()


def svg_script(marker: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
        f"<script>alert('{marker}')</script></svg>"
    ).encode()


def jpeg_with_gps(marker: str) -> bytes:
    exif = Image.Exif()
    exif[CAMERA_MAKE] = f"Kamera {marker}"
    exif.get_ifd(GPS_IFD).update(GPS)
    out = io.BytesIO()
    _image().save(out, format="JPEG", exif=exif, comment=f"Kommentar {marker}".encode())
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as check:
        assert check.getexif().get_ifd(GPS_IFD), "the test file carries GPS data"
    return data


def png_with_metadata(marker: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"Aufgenommen bei {marker}")
    info.add_itxt("XML:com.adobe.xmp", f"<x:xmpmeta>{marker}</x:xmpmeta>")
    exif = Image.Exif()
    exif[CAMERA_MAKE] = f"Kamera {marker}"
    exif.get_ifd(GPS_IFD).update(GPS)
    out = io.BytesIO()
    _image().save(out, format="PNG", pnginfo=info, exif=exif)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(marker: str, pixels: int) -> bytes:
    """A valid PNG header claiming pixels x pixels, and a tiny compressed stream behind it."""
    header = struct.pack(">IIBBBBB", pixels, pixels, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + _chunk(b"IEND", b"")
    )


def zip_bomb(marker: str, inflated: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{marker}.txt", b"\0" * inflated)
    return out.getvalue()


def gzip_bomb(marker: str, inflated: int) -> bytes:
    return gzip.compress(b"\0" * inflated, compresslevel=9)


def corrupt_jpeg(marker: str) -> bytes:
    noise = random.Random(7).randbytes(2000)
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + noise


def jpeg_magic_png_body(marker: str) -> bytes:
    out = io.BytesIO()
    _image().save(out, format="PNG")
    return b"\xff\xd8\xff" + out.getvalue()


def fake_webp(marker: str) -> bytes:
    return b"RIFF\x40\x00\x00\x00WEBPVP8 " + random.Random(8).randbytes(64)


def empty(marker: str) -> bytes:
    return b""


def text(marker: str, content: str) -> bytes:
    """Exactly this text ({marker} replaced), UTF-8."""
    return expand(content, marker).encode()


def text_of(marker: str, size: int) -> bytes:
    return (marker + " " + "Beweis " * size)[:size].encode() if size >= len(marker) else b"x" * size


def noisy_jpeg(marker: str, side: int) -> bytes:
    """Random pixels do not compress: a JPEG of side x side is hundreds of kilobytes."""
    pixels = random.Random(9).randbytes(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(out, format="JPEG", quality=95)
    return out.getvalue()


FILES: dict[str, Callable[..., bytes]] = {
    function.__name__: function
    for function in (
        gif_html_text,
        gif_html_binary,
        pdf_with_js,
        html_page,
        svg_script,
        jpeg_with_gps,
        png_with_metadata,
        png_bomb,
        zip_bomb,
        gzip_bomb,
        corrupt_jpeg,
        jpeg_magic_png_body,
        fake_webp,
        empty,
        text,
        text_of,
        noisy_jpeg,
    )
}


def make_file(spec: dict[str, Any], marker: str) -> bytes:
    arguments = {name: value for name, value in spec.items() if name != "make"}
    return FILES[spec["make"]](marker, **arguments)


# -- JSON bodies ---------------------------------------------------------------------------------------------

_SLOT = "\ue000SLOT\ue001"  # a private-use placeholder that no body contains


def _first_string(body: dict[str, Any]) -> tuple[str, Any]:
    """The first field whose value is a string (or a list starting with one): where splices go."""
    for name, value in body.items():
        if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], str)):
            return name, value
    raise AssertionError("every base body has a string")


def _with_slot(body: dict[str, Any], name: str, *, keep: bool) -> str:
    """The body as JSON text with the field's (first) string replaced by the slot, or followed by it."""
    value = body[name]
    first = value if isinstance(value, str) else value[0]
    slotted = first + _SLOT if keep else _SLOT
    changed = {**body, name: slotted if isinstance(value, str) else [slotted, *value[1:]]}
    return json.dumps(changed, ensure_ascii=False)


def applies(build: dict[str, Any], fields: tuple[str, ...]) -> bool:
    """Whether a json.yaml item applies to a body with these fields: "replace" needs the field, "add" needs
    it absent; every other builder works on any body."""
    if build["how"] == "replace":
        return build["field"] in fields
    if build["how"] == "add":
        return build["field"] not in fields
    return True


def build_body(build: dict[str, Any], base: dict[str, Any], marker: str) -> bytes | None:
    """The hostile body of a json.yaml item for one operation; None where the item does not apply."""
    how = build["how"]
    if not applies(build, tuple(base)):
        return None
    if how == "raw":
        return expand(str(build["text"]), marker).encode()
    if how == "encode":
        return json.dumps(base, ensure_ascii=False).encode(str(build["codec"]))
    if how in ("replace", "add"):
        field = str(build["field"])
        raw = "9" * int(build["digits"]) if "digits" in build else expand(str(build["json"]), marker)
        text = json.dumps({**base, field: _SLOT}, ensure_ascii=False)
        return text.replace(json.dumps(_SLOT, ensure_ascii=False), raw).encode()
    if how == "duplicate":
        first = next(iter(base))
        text = json.dumps(base, ensure_ascii=False)
        return (text[:-1] + f", {json.dumps(first)}: {build['json']}}}").encode()
    name, _ = _first_string(base)
    if how == "nest":
        depth = int(build["depth"])
        return _with_slot(base, name, keep=False).replace(f'"{_SLOT}"', "[" * depth + "]" * depth).encode()
    if how == "splice":
        spliced = bytes.fromhex(str(build["hex"]))
        return _with_slot(base, name, keep=True).encode().replace(_SLOT.encode(), spliced)
    if how == "pad":
        size = int(build["bytes"])
        return _with_slot(base, name, keep=True).replace(_SLOT, "x" * size).encode()
    raise AssertionError(f"unknown builder {how}")
