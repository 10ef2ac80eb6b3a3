"""A small RDF Turtle writer (W3C RDF 1.1 Turtle): enough for the DCAT-AP.de metadata of the open data.

Written here rather than pulled in as rdflib, which the api process would otherwise carry for a few hundred
lines of text: subjects with their predicates in the order given, nested blank nodes, IRIs, plain, language
tagged and typed literals. The output is a pure function of the input, byte for byte (the files built from
it are served with an ETag). The tests parse every file this writes with rdflib.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

# Characters an IRIREF may hold as they are (RFC 3987 reserved and unreserved, and the percent sign);
# everything else (spaces, quotes, <>{}|^`\ and anything outside ASCII) is percent-encoded.
_IRI_SAFE = ":/?#[]@!$&'()*+,;=%-._~"
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True, slots=True)
class IRI:
    value: str

    def render(self) -> str:
        return f"<{quote(self.value, safe=_IRI_SAFE)}>"


@dataclass(frozen=True, slots=True)
class Term:
    """A prefixed name (``dcat:Dataset``) of a prefix the document declares."""

    value: str

    def render(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Literal:
    text: str
    lang: str | None = None
    datatype: str | None = None  # a prefixed name such as "xsd:date"

    def render(self) -> str:
        body = '"' + "".join(_ESCAPES.get(char, char) for char in self.text) + '"'
        if self.lang:
            return f"{body}@{self.lang}"
        if self.datatype:
            return f"{body}^^{self.datatype}"
        return body


@dataclass(frozen=True, slots=True)
class Node:
    """A blank node written in place, ``[ predicate object ; ... ]``."""

    properties: tuple[tuple[str, Object | Sequence[Object]], ...]


Object = IRI | Term | Literal | Node
Properties = Iterable[tuple[str, Object | Sequence[Object]]]


def node(properties: Properties) -> Node:
    return Node(tuple(properties))


def _objects(value: Object | Sequence[Object]) -> list[Object]:
    return [value] if isinstance(value, IRI | Term | Literal | Node) else list(value)


def _render_properties(properties: Properties, indent: int) -> str:
    pad = " " * indent
    lines = []
    for predicate, value in properties:
        objects = _objects(value)
        if not objects:
            continue
        rendered = ", ".join(_render_object(item, indent) for item in objects)
        lines.append(f"{pad}{predicate} {rendered}")
    return " ;\n".join(lines)


def _render_object(item: Object, indent: int) -> str:
    if isinstance(item, Node):
        inner = _render_properties(item.properties, indent + 4)
        return f"[\n{inner}\n{' ' * indent}]"
    return item.render()


class Document:
    """Prefixes, then one block per subject, in the order they were added."""

    def __init__(self, prefixes: dict[str, str]) -> None:
        self.prefixes = prefixes
        self.blocks: list[str] = []

    def add(self, subject: IRI, properties: Properties) -> None:
        self.blocks.append(f"{subject.render()}\n{_render_properties(properties, 4)} .\n")

    def text(self) -> str:
        head = "".join(f"@prefix {name}: {IRI(iri).render()} .\n" for name, iri in self.prefixes.items())
        return head + "\n" + "\n".join(self.blocks)
