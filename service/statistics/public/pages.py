"""/statistik: the published differentially private figures, with charts rendered on the server.

Reads the release store only (``ledger.published``): no exact figure reaches a visitor. Charts are SVG
drawn here (no JavaScript, no third-party resources); each bar shows the published count and its 90 %
interval, negatives shown as 0 as docs/statistics.md asks (the raw values are in the downloads).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.deps import runtime_of
from service.errors import NotFound
from service.i18n import Translator, format_date
from service.runtime import Runtime
from service.statistics.labels import cell_label
from service.statistics.public.dp import PublicReleaseJson, shown_interval
from service.statistics.public.ledger import content_of, published, published_in
from service.statistics.public.opendata import resource_name
from service.web import Pages, StrictRoute, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

_CHART_WIDTH, _CHART_HEIGHT, _PAD = 640, 220, 28


@dataclass(frozen=True, slots=True)
class _Cell:
    key: str
    label: str
    value: int
    raw: int
    half_width: int
    interval: tuple[int, int]


@dataclass(frozen=True, slots=True)
class _Bar:
    x: float
    width: float
    y: float
    height: float
    cx: float
    y_low: float
    y_high: float
    label: str
    value: int
    half_width: int


@dataclass(frozen=True, slots=True)
class _Chart:
    """Geometry of a bar chart with interval whiskers, in SVG user units."""

    width: int
    height: int
    bars: list[_Bar]
    baseline: int
    top: int


@dataclass(frozen=True, slots=True)
class _Table:
    id: str
    title: str
    measure: str
    epsilon: float
    resource: str
    cells: list[_Cell]
    chart: _Chart | None


@dataclass(frozen=True, slots=True)
class _Release:
    """What statistics_public.html reads as ``release``."""

    year: int
    epsilon: float
    tables: list[_Table]


def _bars(cells: list[_Cell]) -> _Chart:
    top = max((c.interval[1] for c in cells), default=1) or 1
    inner_w, inner_h = _CHART_WIDTH - 2 * _PAD, _CHART_HEIGHT - 2 * _PAD
    step = inner_w / max(1, len(cells))
    bars = []
    for index, cell in enumerate(cells):
        height = inner_h * cell.value / top
        low, high = cell.interval
        x = _PAD + index * step
        bars.append(
            _Bar(
                x=round(x + step * 0.15, 1),
                width=round(step * 0.7, 1),
                y=round(_PAD + inner_h - height, 1),
                height=round(height, 1),
                cx=round(x + step / 2, 1),
                y_low=round(_PAD + inner_h - inner_h * low / top, 1),
                y_high=round(_PAD + inner_h - inner_h * high / top, 1),
                label=cell.label,
                value=cell.value,
                half_width=cell.half_width,
            )
        )
    return _Chart(width=_CHART_WIDTH, height=_CHART_HEIGHT, bars=bars, baseline=_PAD + inner_h, top=top)


def _view(runtime: Runtime, payload: PublicReleaseJson, lang: str, t: Translator) -> _Release:
    tables = []
    for table in payload["tables"]:
        cells = [
            _Cell(
                key=cell["key"],
                label=cell_label(runtime, table["by"], cell["key"], lang, t),
                value=cell["value"],
                raw=cell["raw"],
                half_width=cell["half_width"],
                interval=shown_interval(cell["value"], cell["half_width"]),
            )
            for cell in table["cells"]
        ]
        tables.append(
            _Table(
                id=table["id"],
                title=t(f"statistics.table.{table['id']}"),
                measure=table["measure"],
                epsilon=table["epsilon"],
                resource=resource_name(table["id"], table["measure"], table["by"]),
                cells=cells,
                chart=_bars(cells) if table["by"] == "month" else None,
            )
        )
    return _Release(year=payload["year"], epsilon=payload["epsilon_spent"], tables=tables)


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


@router.get("/statistik")
def statistics_page(request: Request) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    t = Translator(lang)
    with runtime.sessions() as db:
        records = published(db)
        chosen = request.query_params.get("jahr")
        record = next((r for r in records if str(r.year) == chosen), records[0] if records else None)
        release = _view(runtime, content_of(record), lang, t) if record is not None else None
        published_on = format_date(record.published_at, lang) if record and record.published_at else ""
        years = sorted({r.year for r in records}, reverse=True)
    return _pages(request).render(
        request,
        "statistics_public.html",
        release=release,
        years=years,
        published_on=published_on,
        publisher=runtime.settings.open_data_publisher,
    )


def _record(runtime: Runtime, year: str) -> tuple[str, PublicReleaseJson]:
    """A year's release for the downloads: its id and its stored document."""
    with runtime.sessions() as db:
        record = published_in(db, year)
        if record is None:
            raise NotFound()
        return record.id, content_of(record)


@router.get("/statistik/{year}.json")
def statistics_json(year: str, request: Request) -> Response:
    release_id, content = _record(runtime_of(request), year)
    return Response(
        json.dumps({"id": release_id, **content}, ensure_ascii=False, indent=1),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="rueckhalt-statistik-{int(year)}.json"'},
    )


@router.get("/statistik/{year}.csv")
def statistics_csv(year: str, request: Request) -> Response:
    _, content = _record(runtime_of(request), year)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["table", "measure", "by", "key", "value", "raw", "half_width_90", "epsilon"])
    for table in content["tables"]:
        for cell in table["cells"]:
            writer.writerow(
                [
                    table["id"],
                    table["measure"],
                    table["by"],
                    cell["key"],
                    cell["value"],
                    cell["raw"],
                    cell["half_width"],
                    table["epsilon"],
                ]
            )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="rueckhalt-statistik-{int(year)}.csv"'},
    )
