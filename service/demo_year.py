"""The demo's synthetic year: made-up reports filed through the real intake, so that a first `make run` shows
a filled coordinators' dashboard, response times and public figures. The worker loads it when it starts in
demo mode (workers/tasks.py, ``demo.year``), after the service is up: filing some 4,000 reports takes
seconds to a minute, and building the gated snapshot up to a minute more.

The statistics engine's own generator (``service.statistics.synthetic``, fixed seed) plans about 2,400
reports a year from January of last year through last month: one case per synthetic reporter, its further
reports as further incidents of that case. Each is filed by ``IntakeService`` as a reporter's would be:
validated, routed by the policy, sealed under a fresh case key wrapped to every organisation of the
decision, with its statistics row written in the same transaction. Only the clock differs (each is filed as
if in its month: ``DemoFiling.at``), nobody is notified of a case from the past, and every case is marked
``demo``. A counsellor's side follows the filing: acknowledged within hours, answered (a message sealed
under the case key) within days, and closed weeks later (by now at the latest): the synthetic year stays out
of the counsellors' inbox, which shows open cases, and gives the beat nothing to escalate or remind of.

Demo only: the loader refuses unless ``RUECKHALT_DEMO`` is set in embedded mode (``ConfigurationError``;
production refuses that setting at start), and only the worker's ``demo.year`` task calls it.
The generator draws from numpy's seeded generator; it is never used for privacy noise (docs/statistics.md).
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import groupby

import numpy as np
from sqlalchemy import func, select

from service.cases.conversation import add_message
from service.cases.models import Case, CaseStatus, GrantRole, MessageDirection
from service.config import ConfigurationError, Mode
from service.db import utcnow
from service.extract.models import StatisticsExtract
from service.i18n import LOCAL_ZONE
from service.identity.models import CaseKeyGrant
from service.reports.filing import CaseDraft, DemoFiling
from service.reports.schemas import IncidentFields, ReportCreate
from service.runtime import Runtime
from service.statistics.rows import ExtractRow
from service.statistics.synthetic import generate
from service.taxonomy.loader import ANSWER_KINDS

log = logging.getLogger("rueckhalt.demo")

SEED = 2026
REPORTS_PER_YEAR = 2400
# Who reports: mostly the person affected; some report for someone else, a few administrations for staff.
_REPORTED_BY = {"self": 0.85, "someone_else": 0.10, "administration": 0.05}
_OUTCOMES = {"supported": 0.72, "referred_elsewhere": 0.1, "no_contact": 0.08, "other": 0.1}
_ANSWERED = 0.9
_ANSWER = "Demo: Guten Tag, wir haben Ihren Bericht gelesen und schlagen Ihnen ein erstes Gespräch vor."
_BATCH = 250


@dataclass(frozen=True)
class _Filed:
    case_id: str
    data_key: bytes
    first_at: datetime
    last_at: datetime


def months_to_load(today: date) -> tuple[str, int]:
    """The last month and the number of months of the synthetic history: from January of last year
    through last month, so that last year is complete (the public release) and this year has its months
    so far (the dashboard's snapshot of last month)."""
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}", 12 * (year - (today.year - 1)) + month


@dataclass(frozen=True)
class DemoYear:
    reports_filed: int  # 0 when the year was there already
    released_year: int  # the public release of this year exists (computed now or stored before)
    snapshot_as_of: str
    snapshot_released: bool


def load_demo_year(runtime: Runtime, *, today: date | None = None) -> DemoYear:
    """Everything a first start needs to show figures, each done once: the synthetic year, last year's
    public release (from the release store when it exists: the privacy budget is spent once) and the
    coordinators' snapshot of last month (gated like every snapshot; a stored one is kept)."""
    from service.statistics.dashboard.service import make_snapshot
    from service.statistics.domains import domains_from
    from service.statistics.policy import load_statistics_policy
    from service.statistics.public.ledger import release_year

    today = today or datetime.now(LOCAL_ZONE).date()
    filed = load_synthetic_year(runtime, today=today)
    policy = load_statistics_policy(runtime.settings.policies_dir)
    domains = domains_from(runtime.taxonomy)
    last_month, _ = months_to_load(today)
    with runtime.sessions() as session:
        release_year(session, year=today.year - 1, policy=policy.public, domains=domains, audit=runtime.audit)
        session.commit()  # seeding: each step is its own transaction
    with runtime.sessions() as session:
        snapshot = make_snapshot(
            session, as_of=last_month, domains=domains, rules=policy.coordinator, audit=runtime.audit
        )
        session.commit()
    return DemoYear(filed, today.year - 1, snapshot.as_of, snapshot.released)


def load_synthetic_year(
    runtime: Runtime,
    *,
    today: date | None = None,
    reports_per_year: int = REPORTS_PER_YEAR,
    seed: int = SEED,
) -> int:
    """File the synthetic history unless statistics rows exist already; returns the reports filed.

    Demo mode only (``RUECKHALT_DEMO=true``, which production refuses to start with): made-up cases must
    never mix with reporters' cases, nor their statistics rows with real ones."""
    if runtime.settings.mode is Mode.production or not runtime.settings.demo:
        raise ConfigurationError("the synthetic year is demo data: embedded mode with RUECKHALT_DEMO only")
    with runtime.sessions() as session:
        if (session.scalar(select(func.count()).select_from(StatisticsExtract)) or 0) > 100:
            return 0
    today = today or datetime.now(LOCAL_ZONE).date()
    last_month, months = months_to_load(today)
    plan = generate(last_month, months, reports_per_year, seed, policies_dir=runtime.settings.policies_dir)
    rng = np.random.default_rng(seed)
    now = utcnow()
    reporters = [list(rows) for _, rows in groupby(sorted(plan, key=_reporter), key=_reporter)]
    filed: list[_Filed] = []
    # Batch by batch, each acknowledged at once: a load cut short leaves no old unacknowledged cases behind
    # for the escalation to wake everybody up with.
    for start in range(0, len(reporters), _BATCH):
        batch = [_file_case(runtime, rows, rng, now) for rows in reporters[start : start + _BATCH]]
        _counsellors(runtime, batch, rng, now)
        filed += batch
    with runtime.sessions() as session:
        runtime.audit.append(
            session,
            actor_kind="system",
            actor_id=None,
            action="demo.synthetic_year",
            object_type="demo",
            object_id=last_month,
            details={"cases": len(filed), "reports": len(plan), "months": months},
        )
        session.commit()
    log.info("demo: %d synthetic reports in %d cases through %s", len(plan), len(filed), last_month)
    return len(plan)


def _reporter(row: ExtractRow) -> str:
    return row.reporter_pseudonym


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    codes = list(weights)
    return codes[int(rng.choice(len(codes), p=np.array(list(weights.values())) / sum(weights.values())))]


def _moment_in(month: str, rng: np.random.Generator, now: datetime) -> datetime:
    """A time of day within the month (local time, 7:00 to 23:00), never later than now."""
    year, number = int(month[:4]), int(month[5:7])
    day = int(rng.integers(1, calendar.monthrange(year, number)[1] + 1))
    minute = int(rng.integers(7 * 60, 23 * 60))
    local = datetime.combine(date(year, number, day), time(minute // 60, minute % 60), LOCAL_ZONE)
    return min(local.astimezone(now.tzinfo), now - timedelta(hours=1))


def _day_in(month: str | None, latest: date, rng: np.random.Generator) -> date | None:
    """The incident's day: within its month, not after the report."""
    if month is None:
        return None
    year, number = int(month[:4]), int(month[5:7])
    last = min(calendar.monthrange(year, number)[1], latest.day if latest.strftime("%Y-%m") == month else 31)
    return date(year, number, int(rng.integers(1, max(1, last) + 1)))


def _incident(runtime: Runtime, row: ExtractRow, at: datetime, rng: np.random.Generator) -> dict[str, object]:
    """The incident fields of a planned row, as a reporter would fill them in."""
    tax = runtime.taxonomy
    what = ", ".join(tax.label("incident_types", code) for code in row.type_codes)
    return {
        "type_codes": list(row.type_codes),
        "description": f"Demo (synthetisch erzeugt): {what}, {tax.label('channels', row.channel)}.",
        "channel": row.channel,
        "occurred_on": _day_in(row.incident_month, at.astimezone(LOCAL_ZONE).date(), rng),
        "urgency": "high" if row.severity_group <= 2 else "normal",
    }


def _file_case(
    runtime: Runtime, rows: Sequence[ExtractRow], rng: np.random.Generator, now: datetime
) -> _Filed:
    """One synthetic reporter's case: the first report filed, the others added as further incidents."""
    timed = sorted(((_moment_in(row.receipt_month, rng, now), row) for row in rows), key=lambda item: item[0])
    first_at, first = timed[0]
    # The generator put the answers on the earliest month; within that month the earliest moment files.
    answered = next((row for _, row in timed if row.motives is not None), first)
    reported_by = _choice(rng, _REPORTED_BY)
    districts = runtime.districts.districts_of(first.land)
    report = ReportCreate.model_validate(
        {
            **_incident(runtime, first, first_at, rng),
            "land": first.land,
            "district_ags": districts[int(rng.integers(len(districts)))].ags if districts else None,
            "office": "municipal_employee" if reported_by == "administration" else first.office,
            "reported_by": reported_by,
            "targets": ["staff"] if reported_by == "administration" else ["self"],
            "consent_police": bool(rng.random() < 0.2),
            **{kind: list(getattr(answered, kind) or ()) for kind in ANSWER_KINDS},
        }
    )
    draft = CaseDraft.new()
    with runtime.sessions() as session:
        case_id = runtime.intake.file_report(session, report, draft, [], demo=DemoFiling(at=first_at)).case_id
        session.commit()
    for at, row in timed[1:]:
        with runtime.sessions() as session:
            opened = runtime.intake.open_case_by_id(session, case_id, draft.data_key)
            incident = IncidentFields.model_validate(_incident(runtime, row, at, rng))
            runtime.intake.add_incident(session, opened, incident, [], demo=DemoFiling(at=at))
            session.commit()
    return _Filed(case_id, draft.data_key, first_at, timed[-1][0])


def _hours(rng: np.random.Generator, median: float, sigma: float) -> timedelta:
    return timedelta(hours=float(rng.lognormal(np.log(median), sigma)))


def _counsellors(runtime: Runtime, cases: Sequence[_Filed], rng: np.random.Generator, now: datetime) -> None:
    """What the holding counsellors did with each case: acknowledged, answered, closed.

    Written directly, as the counsellors' own forms would leave it; the answer is a message sealed under the
    case key like any other. Never later than now."""
    latest = now - timedelta(minutes=5)
    with runtime.sessions() as session:
        by_id = {
            case.id: case
            for case in session.scalars(select(Case).where(Case.id.in_([c.case_id for c in cases])))
        }
        holders: dict[str, list[str]] = {}
        for grant in session.scalars(
            select(CaseKeyGrant)
            .where(CaseKeyGrant.case_id.in_(list(by_id)), CaseKeyGrant.role == GrantRole.target.value)
            .order_by(CaseKeyGrant.case_id, CaseKeyGrant.organisation_id)
        ):
            holders.setdefault(grant.case_id, []).append(grant.organisation_id)
        for filed in cases:
            case = by_id[filed.case_id]
            acknowledged = min(filed.first_at + _hours(rng, 6, 1.2), latest)
            case.acknowledged_at = acknowledged
            answers: list[datetime] = []
            # Each organisation that sees the case answers on its own (the response times are per holder).
            for organisation in holders.get(case.id, []):
                if rng.random() >= _ANSWERED:
                    continue
                answers.append(min(acknowledged + _hours(rng, 40, 1.0), latest))
                add_message(
                    session,
                    case.id,
                    filed.data_key,
                    _ANSWER,
                    MessageDirection.to_reporter,
                    None,
                    organisation,
                    at=answers[-1],
                )
            done = max([filed.last_at, acknowledged, *answers])
            case.status = CaseStatus.closed.value
            case.outcome = _choice(rng, _OUTCOMES)
            case.closed_at = min(done + timedelta(days=float(rng.uniform(7, 60))), latest)
            case.updated_at = case.closed_at
        session.commit()
