"""/intern/statistik: the coordinators' dashboard (German first). Stored snapshots only, every view audited.

Tables of the fixed catalogue as released ("< 5" for 1-4 reporters, "–" for what is hidden to protect
other cells), the national trend as a server-drawn SVG chart, persons per 100,000 inhabitants by Land
(population from the districts file), response times per organisation, and a CSV download (audited as an
export). No JavaScript.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from service.auth.deps import CoordinatorDep, pages_of
from service.cases.response_times import OrganisationResponseTimes, response_times
from service.db import utcnow
from service.deps import in_unit_of_work, runtime_of
from service.errors import NotFound
from service.i18n import Translator
from service.knowledge.selfcheck_dashboard import Aggregate, aggregate
from service.matching.service import cases_in_clusters
from service.runtime import Runtime
from service.statistics.dashboard.catalogue import ANSWER_TABLES, CellStats
from service.statistics.dashboard.service import audit_view, released_snapshots, snapshot_of
from service.statistics.dashboard.snapshot import Snapshot
from service.statistics.dashboard.suppression import primary_status, shown_cell
from service.statistics.labels import cell_label
from service.statistics.policy import load_statistics_policy
from service.web import StrictRoute, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)
_ANSWER_TABLE_IDS = frozenset(table.id for table, _ in ANSWER_TABLES)


@dataclass(frozen=True, slots=True)
class _Row:
    labels: list[str]
    persons: str
    reports: str
    rate: str | None = None  # persons per 100,000 inhabitants (land_quarter only; None: hidden)


@dataclass(frozen=True, slots=True)
class _Table:
    id: str
    title: str
    dimensions: list[str]
    rows: list[_Row]
    rate: bool  # the table has the rate column
    note: str


@dataclass(frozen=True, slots=True)
class _Bar:
    x: float
    width: float
    height: float
    y: float
    label: str
    shown: str


@dataclass(frozen=True, slots=True)
class _Trend:
    width: int
    height: int
    baseline: int
    bars: list[_Bar]


@dataclass(frozen=True, slots=True)
class _LandBar:
    x: int
    y: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class _LandTrend:
    land: str
    bars: list[_LandBar]


def _tables(runtime: Runtime, snapshot: Snapshot, lang: str, t: Translator) -> list[_Table]:
    tables = []
    for table in snapshot.tables:
        rows = []
        for cell in table.cells:
            labels = [
                cell_label(runtime, d, v, lang, t) for d, v in zip(table.dimensions, cell.key, strict=True)
            ]
            rate = None
            if table.id == "land_quarter" and cell.persons is not None:
                population = runtime.districts.land_population(cell.key[0])
                rate = (
                    f"{cell.persons * 100_000 / population:.2f}".replace(".", "," if lang == "de" else ".")
                    if population
                    else "–"
                )
            rows.append(
                _Row(labels, persons=cell.display("persons"), reports=cell.display("reports"), rate=rate)
            )
        tables.append(
            _Table(
                id=table.id,
                title=t(f"dashboard.table.{table.id}"),
                dimensions=[t(f"dashboard.dimension.{d}") for d in table.dimensions],
                rows=rows,
                rate=table.id == "land_quarter",
                # The KoMo tables are multi-select: say so beside each, their rows do not add up.
                note=t("dashboard.komo_note") if table.id in _ANSWER_TABLE_IDS else "",
            )
        )
    return tables


def _trend(snapshot: Snapshot) -> _Trend:
    cells = snapshot.table("national_month").cells
    values = [cell.persons or 0 for cell in cells]
    top = max(values, default=1) or 1
    width, height, pad = 640, 200, 28
    step = (width - 2 * pad) / max(1, len(cells))
    bars = [
        _Bar(
            x=round(pad + i * step + step * 0.15, 1),
            width=round(step * 0.7, 1),
            height=round((height - 2 * pad) * (cell.persons or 0) / top, 1),
            y=round(height - pad - (height - 2 * pad) * (cell.persons or 0) / top, 1),
            label=cell.key[0],
            shown=cell.display("persons"),
        )
        for i, cell in enumerate(cells)
    ]
    return _Trend(width=width, height=height, baseline=height - pad, bars=bars)


def _land_trends(runtime: Runtime, snapshot: Snapshot, lang: str) -> list[_LandTrend]:
    """Per Land: persons per 100,000 inhabitants by quarter, as a small bar chart each (hidden quarters
    are left out of the bars, not drawn as 0, and named in the text)."""
    table = snapshot.table("land_quarter")
    by_land: dict[str, list[tuple[str, float | None, str]]] = {}
    for cell in table.cells:
        land, quarter = cell.key
        population = runtime.districts.land_population(land)
        rate = cell.persons * 100_000 / population if cell.persons is not None and population else None
        by_land.setdefault(land, []).append((quarter, rate, cell.display("persons")))
    top = (
        max((rate for rows in by_land.values() for _, rate, _ in rows if rate is not None), default=1.0)
        or 1.0
    )
    trends = []
    for land, rows in sorted(by_land.items()):
        rows.sort()
        bars = []
        for index, (quarter, rate, shown) in enumerate(rows):
            height = 0.0 if rate is None else 36 * rate / top
            text = "–" if rate is None else f"{rate:.2f}"
            bars.append(
                _LandBar(
                    x=4 + index * 22,
                    y=round(40 - height, 1),
                    height=round(height, 1),
                    title=f"{quarter}: {text if lang == 'en' else text.replace('.', ',')} ({shown})",
                )
            )
        trends.append(_LandTrend(land=cell_label(runtime, "land", land, lang, Translator(lang)), bars=bars))
    return trends


def repeat_cases_shown(runtime: Runtime, cases: int) -> str:
    """The dashboard's figure of cases in a repeat-perpetrator cluster, under the snapshot tables' primary
    rule (1 to k-1 shows "< k"; each case is one reporter) and, since it is counted live rather than once a
    month, rounded down to a multiple of k: a view a day later must not tell that one more case joined."""
    rules = load_statistics_policy(runtime.settings.policies_dir).coordinator
    status = primary_status(CellStats(reports=cases, persons=cases, top_reports=min(cases, 1)), rules)
    rounded = cases - cases % rules.min_reporters
    return shown_cell(("all",), CellStats(rounded, rounded, min(rounded, 1)), status).display("persons")


# What the dashboard page reads: the snapshots, the one shown, response times, repeat cases, self-checks.
_DashboardData = tuple[list[Snapshot], Snapshot | None, list[OrganisationResponseTimes], str, Aggregate]


@router.get("/intern/statistik")
def dashboard(request: Request, subject: CoordinatorDep) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    t = Translator(lang)

    def read(db: Session) -> _DashboardData:
        snapshots = released_snapshots(db)
        chosen = request.query_params.get("stand")
        snapshot = next(
            (s for s in reversed(snapshots) if s.as_of == chosen), snapshots[-1] if snapshots else None
        )
        times = response_times(db, utcnow())
        repeat_cases = repeat_cases_shown(runtime, cases_in_clusters(db))
        selfchecks = aggregate(runtime.selfchecks.tallies(db), lang)
        audit_view(db, runtime.audit, subject.user_id, f"page:{snapshot.as_of if snapshot else 'none'}")
        return snapshots, snapshot, times, repeat_cases, selfchecks

    # The view's audit event is committed before the page is rendered: the render does not hold the audit
    # chain's lock, and a page that was shown was audited.
    snapshots, snapshot, times, repeat_cases, selfchecks = in_unit_of_work(runtime, read)
    return pages_of(request).render(
        request,
        "staff_dashboard.html",
        snapshot=snapshot,
        months=[s.as_of for s in reversed(snapshots)],
        tables=_tables(runtime, snapshot, lang, t) if snapshot else [],
        trend=_trend(snapshot) if snapshot else None,
        land_trends=_land_trends(runtime, snapshot, lang) if snapshot else [],
        response_times=times,
        repeat_cases=repeat_cases,
        selfchecks=selfchecks,
    )


@router.get("/intern/statistik/{as_of}.csv")
def dashboard_csv(as_of: str, request: Request, subject: CoordinatorDep) -> Response:
    runtime = runtime_of(request)

    def export(db: Session) -> Snapshot:
        snapshot = snapshot_of(db, as_of[:7])
        if snapshot is None:
            raise NotFound()
        audit_view(db, runtime.audit, subject.user_id, f"csv:{snapshot.as_of}", action="dashboard.export")
        return snapshot

    # Committed before the file is built, which then does not hold the audit chain's lock.
    snapshot = in_unit_of_work(runtime, export)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["table", "dimensions", "key", "persons", "reports"])
    for table in snapshot.tables:
        for cell in table.cells:
            writer.writerow(
                [
                    table.id,
                    "/".join(table.dimensions),
                    "/".join(cell.key),
                    cell.display("persons"),
                    cell.display("reports"),
                ]
            )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="rueckhalt-dashboard-{snapshot.as_of}.csv"'},
    )
