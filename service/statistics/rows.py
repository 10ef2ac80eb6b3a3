"""The statistics extract as plain, immutable values: what every statistic in this package is computed from.

The coordinator catalogue, the release gate and the public DP release are pure functions of these rows, so
they can be tested (and benchmarked) on synthetic data without a database, and the database row type stays
where the ORM needs it. The fields mirror ``StatisticsExtract`` minus its surrogate id: the id is no fact
about the incident and must not travel into statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.extract.models import StatisticsExtract

Answer = tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class ExtractRow:
    # Keyed pseudonym of the reporter (one per case): counts distinct reporters, names nobody.
    reporter_pseudonym: str
    receipt_month: str  # "YYYY-MM": the month the service received the report
    incident_month: str | None
    land: str  # "01" .. "16"
    primary_type: str  # the most severe of ``type_codes`` (see ``service.extract.service``)
    type_codes: tuple[str, ...]
    channel: str  # top-level channel code
    office: str | None
    severity_group: int  # 1 (extreme violence) .. 6 (mass mailing)
    # Rows of incidents linked as one event share it (a keyed token, no case behind it); None for the rest.
    event_key: str | None = None
    # The report's KoMo answers (top-level codes), on its first incident's row; None on a further incident.
    motives: Answer = None
    bias: Answer = None
    triggers: Answer = None
    consequences: Answer = None

    @property
    def year(self) -> int:
        return int(self.receipt_month[:4])


def from_model(model: StatisticsExtract) -> ExtractRow:
    """Convert an ORM row; the JSON list of codes becomes a tuple so the value can be hashed and shared."""
    return ExtractRow(
        reporter_pseudonym=model.reporter_pseudonym,
        receipt_month=model.receipt_month,
        incident_month=model.incident_month,
        land=model.land,
        primary_type=model.primary_type,
        type_codes=tuple(model.type_codes),
        channel=model.channel,
        office=model.office,
        severity_group=model.severity_group,
        event_key=model.event_key,
        motives=_answer(model.motives),
        bias=_answer(model.bias),
        triggers=_answer(model.triggers),
        consequences=_answer(model.consequences),
    )


def _answer(codes: list[str] | None) -> Answer:
    return None if codes is None else tuple(codes)


def to_model(row: ExtractRow) -> StatisticsExtract:
    """A stored extract row (synthetic history of the demo, benchmarks and tests)."""
    return StatisticsExtract(
        reporter_pseudonym=row.reporter_pseudonym,
        receipt_month=row.receipt_month,
        incident_month=row.incident_month,
        land=row.land,
        primary_type=row.primary_type,
        type_codes=list(row.type_codes),
        channel=row.channel,
        office=row.office,
        severity_group=row.severity_group,
        event_key=row.event_key,
        motives=None if row.motives is None else list(row.motives),
        bias=None if row.bias is None else list(row.bias),
        triggers=None if row.triggers is None else list(row.triggers),
        consequences=None if row.consequences is None else list(row.consequences),
    )
