"""Showing text that a person wrote, exactly as they wrote it, without letting it rearrange what is around it.

Threats arrive pasted from messaging apps, with the bidi and format characters those apps put around names
(U+200E/200F marks, U+202A-202E embeddings and overrides, U+2066-2069 isolates, U+200B-200D zero-width
characters, U+FEFF). They are evidence: the intake accepts and seals them verbatim. The danger is only in
display ("Trojan Source": an unclosed right-to-left override reorders the text after it), so every place that
shows such text isolates it:

- HTML: inside ``<bdi dir="auto" class="user-text">`` (the ``user_text`` filter). An isolate closes every
  embedding and override opened inside it (UAX #9, rule X6a), so nothing leaks into the page around it, and
  its direction follows its own first strong character. Counsellors also see which invisible characters a
  text holds (``invisible_marks``), because what they read may differ from the order of the characters.
- Plain text (mails, exports, letters): ``plain_isolated`` gives a display copy with the explicit bidi
  controls removed and each line wrapped in FSI ... PDI. Mails carry no report content today; anything that
  ever puts such text into a plain-text output must go through it. The stored text is never changed.
"""

from __future__ import annotations

import unicodedata

from markupsafe import Markup, escape

# Explicit embeddings, overrides and isolates (and their terminators): what can reorder text after it.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
FSI, PDI = "\u2068", "\u2069"


def user_text(value: object) -> Markup:
    """HTML for text a person wrote: escaped, and isolated from the page around it."""
    if value is None:
        return Markup("")
    return Markup('<bdi class="user-text" dir="auto">{}</bdi>').format(escape(str(value)))


def invisible_marks(value: object) -> list[str]:
    """The invisible format characters (Unicode category Cf) in a text, once each, in order, by name:
    "U+202E RIGHT-TO-LEFT OVERRIDE". Empty for ordinary text."""
    if not value:
        return []
    seen: dict[str, None] = {}
    for char in str(value):
        if unicodedata.category(char) == "Cf":
            seen.setdefault(f"U+{ord(char):04X} {unicodedata.name(char, 'FORMAT CHARACTER')}", None)
    return list(seen)


def plain_isolated(value: str) -> str:
    """A plain-text display copy: bidi controls removed, every line isolated (FSI ... PDI).

    Line by line, because a line break ends a bidi paragraph: an isolate opened on the first line would not
    protect the next one."""
    lines = value.split("\n")
    return "\n".join(FSI + "".join(c for c in line if c not in BIDI_CONTROLS) + PDI for line in lines)
