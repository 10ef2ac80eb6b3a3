"""Loads the corpus (tests/corpus/*.yaml) into typed items; a typo in a file fails here, loudly.

Each item carries `why`: the reason for its expectation is part of the data, next to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

FOLDER = Path(__file__).resolve().parent


def _items(name: str, allowed: set[str], required: set[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load((FOLDER / name).read_text(encoding="utf-8"))["items"]
    seen: set[str] = set()
    for item in items:
        where = f"{name}: {item.get('id')}"
        assert set(item) <= allowed, f"{where}: unknown keys {sorted(set(item) - allowed)}"
        assert required <= set(item), f"{where}: missing {sorted(required - set(item))}"
        assert item["id"] not in seen, f"{where}: the id is used twice"
        assert str(item["why"]).strip(), f"{where}: say why"
        seen.add(item["id"])
    return items


@dataclass(frozen=True)
class TextItem:
    id: str
    text: str
    accepted: bool
    why: str


@cache
def text_items() -> tuple[TextItem, ...]:
    found = []
    for item in _items("text.yaml", {"id", "text", "expect", "why"}, {"id", "text", "expect", "why"}):
        assert item["expect"] in ("accepted", "refused"), item["id"]
        found.append(TextItem(item["id"], item["text"], item["expect"] == "accepted", item["why"]))
    return tuple(found)


@dataclass(frozen=True)
class JsonItem:
    id: str
    build: dict[str, Any]
    # None: every operation that takes a JSON body.
    endpoints: tuple[str, ...] | None
    expect: int
    stored: bool
    why: str
    headers: dict[str, str] = field(default_factory=dict)
    gzip_inflated: int | None = None
    chunked: bool = False


@cache
def json_items() -> tuple[JsonItem, ...]:
    allowed = {"id", "build", "endpoints", "expect", "stored", "why", "headers", "gzip", "chunked"}
    found = []
    for item in _items("json.yaml", allowed, {"id", "build", "endpoints", "expect", "why"}):
        endpoints = item["endpoints"]
        assert endpoints == "all" or isinstance(endpoints, list), item["id"]
        assert isinstance(item["expect"], int), item["id"]
        assert bool(item.get("stored")) == (item["expect"] < 300), f"{item['id']}: stored means accepted"
        found.append(
            JsonItem(
                id=item["id"],
                build=item["build"],
                endpoints=None if endpoints == "all" else tuple(endpoints),
                expect=item["expect"],
                stored=bool(item.get("stored")),
                why=item["why"],
                headers=dict(item.get("headers") or {}),
                gzip_inflated=(item.get("gzip") or {}).get("inflated"),
                chunked=bool(item.get("chunked")),
            )
        )
    return tuple(found)


# The status of each kind of refusal of a form with files.
REFUSAL_STATUS = {
    "attachment_type": 422,
    "attachment_size": 422,
    "attachment_count": 422,
    "attachment_broken": 422,
    "attachment_pixels": 422,
    "content_type": 422,
    "multipart": 422,
    "csrf": 403,
    "too_large": 413,
}
FILE_CHECKS = {"no_metadata", "same_bytes"}


@dataclass(frozen=True)
class UploadItem:
    id: str
    why: str
    accepted: bool
    # Why a refused item is refused (a key of REFUSAL_STATUS).
    reason: str | None = None
    file: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    filename: str = ""
    content_type: str = ""
    count: int = 1
    stored_as: str | None = None
    shown_as: str | None = None
    then: tuple[str, ...] = ()
    report_only: bool = False

    @property
    def status(self) -> int:
        return REFUSAL_STATUS[self.reason] if self.reason else 201


@cache
def upload_items() -> tuple[UploadItem, ...]:
    allowed = {
        "id",
        "why",
        "expect",
        "file",
        "request",
        "filename",
        "content_type",
        "count",
        "stored_as",
        "shown_as",
        "then",
        "report_only",
    }
    found = []
    for item in _items("uploads.yaml", allowed, {"id", "why", "expect"}):
        expect = str(item["expect"]).split()
        accepted = expect == ["accepted"]
        assert accepted or (expect[0] == "refused" and expect[1] in REFUSAL_STATUS), item["id"]
        assert ("file" in item) != ("request" in item), f"{item['id']}: a file or a request"
        assert set(item.get("then", [])) <= FILE_CHECKS, item["id"]
        assert not accepted or item.get("stored_as"), f"{item['id']}: say how an accepted file is kept"
        found.append(
            UploadItem(
                id=item["id"],
                why=item["why"],
                accepted=accepted,
                reason=None if accepted else expect[1],
                file=item.get("file"),
                request=item.get("request"),
                filename=item.get("filename", ""),
                content_type=item.get("content_type", ""),
                count=int(item.get("count", 1)),
                stored_as=item.get("stored_as"),
                shown_as=item.get("shown_as"),
                then=tuple(item.get("then", ())),
                report_only=bool(item.get("report_only")),
            )
        )
    return tuple(found)
