"""What an uploaded file is: its type by content (the allow-list), text that would run rather than show,
and the names it is listed and downloaded under (service/evidence/uploads.py takes files by these rules).
"""

from __future__ import annotations

import re

from service.validation import is_control

# The sniffed window at the start of each file.
SNIFF_BYTES = 4096
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
# The allow-list: every type ``sniff`` can answer (the only ones a stored file, and so a download, can have),
# with the extensions a sender's file name may carry; the first is the one a download is named with.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "image/png": (".png",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
    "text/plain": (".txt", ".text", ".log"),
}
ACCEPTED_TYPES = tuple(EXTENSIONS)
ACCEPTED_EXTENSIONS = frozenset(ext for extensions in EXTENSIONS.values() for ext in extensions)
# Text that a browser, Windows or a mail program would run or render rather than show: web pages, SVG
# and XML (scripts), HTML applications (.hta), Windows script hosts (.wsf), Internet shortcuts (.url) and
# folder settings (desktop.ini). Refused even where the name says .txt.
_ACTIVE_TEXT = re.compile(
    rb"<\s*(?:!doctype|html|head|body|script|svg|iframe|frame|object|embed|meta|style|link|form|base|job"
    rb"|package|xsl:\w+)(?=[\s/>])|<\?xml|<hta:|\[internetshortcut\]|\[\.shellclassinfo\]",
    re.IGNORECASE,
)


def sniff(head: bytes) -> str | None:
    """The content type by magic bytes; None for anything we do not accept."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head and b"\x00" not in head:
        try:
            # A multi-byte character may be cut at the end of the sniffed window.
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:
                return None
        return "text/plain"
    return None


def is_active_text(head: bytes) -> bool:
    """Text that is really a web page, an SVG, a script host file or a shortcut (see _ACTIVE_TEXT)."""
    return _ACTIVE_TEXT.search(head) is not None


def _clean(filename: str | None) -> str:
    return "".join("_" if is_control(char) else char for char in filename or "")


def display_name(filename: str | None) -> str:
    """What the sender's system called the file (folders and all: it is only ever a name, blobs are stored
    under random ones, and the download header flattens it), but never with control or bidi characters (a
    NUL, or a U+202E that turns "gpj.exe" around), and at most 255 characters."""
    return _clean(filename)[:255]


def extension(name: str) -> str:
    """The extension Windows would act on: after the last dot of the last folder part, lower case, with
    the trailing dots and spaces that Windows drops removed first ("Drohbrief.hta. " is an .hta)."""
    base = re.split(r"[/\\]", name.rstrip(". \t"))[-1]
    dot = base.rfind(".")
    return base[dot:].lower() if dot >= 0 else ""


def name_refused(filename: str | None) -> bool:
    """A name whose extension is outside the allow-list (.hta, .js, .vbs, .ps1, .html, .svg, .url, .exe):
    refused whatever the content, so that nobody is handed "Drohbrief.hta" at all."""
    found = extension(_clean(filename))
    return bool(found) and found not in ACCEPTED_EXTENSIONS


def download_name(filename: str, content_type: str) -> str:
    """The name a file is shown and downloaded under: the sender's name with the extension of the type its
    content was detected as, so that a double click opens it in a viewer for that type and nothing runs.
    A different extension is replaced; an unknown one (files stored before names were checked) is kept
    visibly in the name ("Drohbrief_hta.txt"). At most 255 characters, the extension always kept."""
    wanted = EXTENSIONS.get(content_type, (".bin",))
    name = _clean(filename).rstrip(". \t") or "beweis"
    found = extension(name)
    stem = name[: len(name) - len(found)] if found else name
    if found in wanted:
        suffix = name[len(stem) :]
    else:
        suffix = wanted[0]
        if found and found not in ACCEPTED_EXTENSIONS:
            stem = f"{stem}_{found[1:]}"
    stem = stem.rstrip(". \t") or "beweis"
    return stem[: 255 - len(suffix)] + suffix
