"""Fixed domains of every statistic: each month, Land and code, zeros included.

Cells come from the taxonomy and the calendar, never from the data: a table whose rows appear only when
someone reported would itself tell that someone reported (and a public release with data-dependent cells
is not differentially private). Land and month are the finest levels that exist here on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.taxonomy import LANDS, Taxonomy

# An extract row may carry no office (the field is optional at intake); it gets a cell of its own.
OFFICE_NOT_STATED = "not_stated"
# The same cell for a report that answered none of a KoMo question's options.
NOT_STATED = OFFICE_NOT_STATED
# The optional KoMo questions as catalogue dimensions: (dimension, taxonomy kind = ExtractRow field).
ANSWER_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("motive", "motives"),
    ("bias", "bias"),
    ("trigger", "triggers"),
    ("consequence", "consequences"),
)


def months_of(year: int, through_month: int = 12) -> tuple[str, ...]:
    return tuple(f"{year:04d}-{month:02d}" for month in range(1, through_month + 1))


def quarter_of(month: str) -> str:
    """ "2025-05" -> "2025-Q2"."""
    return f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"


def months_in_quarter(quarter: str) -> tuple[str, ...]:
    year, number = int(quarter[:4]), int(quarter[6:])
    return tuple(f"{year:04d}-{month:02d}" for month in range(3 * number - 2, 3 * number + 1))


def office_cell(office: str | None) -> str:
    return OFFICE_NOT_STATED if office is None else office


@dataclass(frozen=True, slots=True)
class Domains:
    """Codes of each dimension in display order."""

    lands: tuple[str, ...]
    types: tuple[str, ...]  # codes a report can carry (A1, A3, A3a, ...), taxonomy order
    type_groups: tuple[str, ...]  # A, B, C, D, X
    offices: tuple[str, ...]  # taxonomy offices and OFFICE_NOT_STATED
    channels: tuple[str, ...]  # top-level channels (the extract keeps only those)
    severities: tuple[str, ...]  # "1" .. "6"
    # (group, severity) pairs a primary type can have: severity is that of the primary type, so the
    # taxonomy forbids e.g. a C code with severity 5. Attackers know the taxonomy, so the gate must too.
    type_severity: tuple[tuple[str, str], ...]
    group_of_type: dict[str, str]
    severity_of_type: dict[str, str]
    # Per KoMo dimension (``ANSWER_DIMENSIONS``): the taxonomy's top-level codes and NOT_STATED.
    answers: dict[str, tuple[str, ...]]


def domains_from(taxonomy: Taxonomy) -> Domains:
    valid = taxonomy.valid_codes("incident_types")
    types = tuple(code for code in taxonomy.all_type_codes() if code in valid)
    group_of = {code: taxonomy.group_of(code) for code in types}
    severity_of = {code: str(taxonomy.severity_of([code])) for code in types}
    pairs = sorted({(group_of[code], severity_of[code]) for code in types})
    return Domains(
        lands=tuple(land.code for land in LANDS),
        types=types,
        type_groups=taxonomy.group_codes(),
        offices=(*(str(item.code) for item in taxonomy.items("offices")), OFFICE_NOT_STATED),
        channels=tuple(str(item.code) for item in taxonomy.items("channels")),
        severities=tuple(str(group.code) for group in taxonomy.data.severity_groups),
        type_severity=tuple(pairs),
        group_of_type=group_of,
        severity_of_type=severity_of,
        answers={
            dimension: (*(str(item.code) for item in taxonomy.items(kind)), NOT_STATED)
            for dimension, kind in ANSWER_DIMENSIONS
        },
    )
