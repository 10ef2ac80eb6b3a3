"""The names evidence files carry in the dossier's list and in the evidence ZIP: ``01-Drohbrief.pdf``.

The number is the file's place in the dossier (incidents in their chronology, each with its files in upload
order, then the files sent with messages), so that the PDF, the ZIP and its ``SHA256SUMS`` name each file the
same way and two files sent under one name stay apart. The name after the number is what the reporter's
system called the file, made safe to unpack anywhere: stored names may hold folder parts ("folders and all",
service/evidence/filetypes.py) and files stored before names were checked may hold control or bidi characters
(a U+202E in "Rechnung<U+202E>fdp.exe" makes an .exe look like a PDF). Such characters become ``_``
(visible, rather than silently dropped), as do the characters Windows refuses in names; an unpacker
never sees a path.
"""

from __future__ import annotations

import unicodedata

# Folder separators of any system and the characters Windows refuses in a file name.
_REFUSED = frozenset('/\\:*?"<>|')
MAX_NAME_CHARS = 150
FALLBACK_NAME = "datei"


def safe_file_name(name: str) -> str:
    """``name`` as one plain file name: no separators, no control, format (bidi, zero-width) or line
    separator characters, no leading dots (a hidden file) or trailing dots and spaces (Windows drops them),
    at most ``MAX_NAME_CHARS`` characters with the extension kept."""
    out = []
    for char in unicodedata.normalize("NFC", name):
        category = unicodedata.category(char)
        unsafe = category.startswith("C") or category in ("Zl", "Zp") or char in _REFUSED
        out.append("_" if unsafe else char)
    cleaned = "".join(out).strip(" .\t")
    if len(cleaned) > MAX_NAME_CHARS:
        dot = cleaned.rfind(".")
        suffix = cleaned[dot:] if dot > 0 and len(cleaned) - dot <= 10 else ""
        cleaned = cleaned[: MAX_NAME_CHARS - len(suffix)].rstrip(" .\t") + suffix
    return cleaned or FALLBACK_NAME


def numbered(number: int, count: int, name: str) -> str:
    """The file's entry name: its place in the dossier, zero-padded to sort as listed, and its safe name."""
    width = max(2, len(str(count)))
    return f"{number:0{width}d}-{safe_file_name(name)}"
