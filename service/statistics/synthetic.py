"""A deterministic synthetic history of the statistics extract, for tests, demos and benchmarks.

Never used for a release: it draws from numpy's seeded generator, which is fine for made-up data and wrong
for privacy noise (the release path, ``service.statistics.public.dp``, uses OpenDP only and must not import
this).

The shape follows what the design expects of the real data (docs/statistics.md): about 2,400 reports a year,
spread over the Länder in proportion to population, most reporters filing once and some two to six times
(a harassment series: repeats follow within weeks, usually with the same kind of incident), insults and
threats common, physical violence rare. Land and office belong to the reporter (one case, one office
holder), type and channel to the report, as at intake. About half of the reporters answer the optional
KoMo questions (motive, bias, trigger, consequences), on their first report only, as the form asks them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.config import PROJECT_ROOT
from service.extract.service import classification
from service.statistics.rows import ExtractRow
from service.taxonomy import Districts, Taxonomy, load_districts, load_taxonomy

# Reports per reporter: 1 .. 6 (mean about 1.5, so 2,400 reports come from about 1,600 reporters).
_REPORTS_PER_REPORTER = np.array([0.72, 0.16, 0.07, 0.03, 0.013, 0.007])

# Relative frequencies of the primary incident type (insults and threats common, violence rare). Codes the
# taxonomy gains later get a small default weight, so the generator never falls out of step with it.
_TYPE_WEIGHTS: dict[str, float] = {
    "A1": 30, "A2": 8, "A3": 6, "A3a": 4, "A3b": 4, "A3c": 1, "A3d": 1.5, "A3e": 1, "A4": 2, "A5": 2,
    "A6": 4, "A7": 3, "A8": 4, "A9": 2, "A10": 5, "A11": 2, "A12": 3, "A13": 2,
    "B1": 2, "B2": 2.5, "B3": 1,
    "C1": 1.5, "C2": 1.5, "C3": 1, "C4": 2, "C5": 2, "C6": 0.3,
    "D1": 1, "D2": 0.8, "D3": 0.8, "D4": 0.4, "D5": 0.2, "D6": 0.05,
    "X1": 2,
}  # fmt: skip
_DEFAULT_TYPE_WEIGHT = 0.5
# A second code on the same report (a campaign that also insults, an insult that also threatens).
_SECOND_CODE_SHARE = 0.2
_SECOND_CODES = ("A1", "A10", "A6", "A2", "A3")

_OFFICE_WEIGHTS: dict[str | None, float] = {
    "council_member": 35, "mayor_volunteer": 15, "mayor_fulltime": 12, "local_mayor": 5,
    "district_administrator": 2, "elected_deputy": 3, "district_council_member": 6,
    "local_council_member": 5, "coopted_member": 2, "candidate": 4, "municipal_employee": 5,
    "project_volunteer": 2, "mandate_staff": 1, "other": 2, None: 1,
}  # fmt: skip

_CHANNEL_WEIGHTS: dict[str, float] = {
    "in_person": 25, "phone": 6, "letter": 8, "email": 20, "messenger": 6, "social_media": 28,
    "web": 3, "press": 2, "other": 2,
}  # fmt: skip

_SAME_TYPE_AS_PREVIOUS = 0.5  # a series tends to repeat the kind of incident
_INCIDENT_MONTH_UNKNOWN = 0.08

# The optional KoMo questions: the share of reporters who open them, and per option the share (in %) of
# those who tick it (independently; several per report). KoMo: a municipal decision and personal grievance
# are the commonest presumed motives; most reports name no bias; about one in eight considered resigning.
_ANSWERED = 0.5
_ANSWER_PERCENT: dict[str, dict[str, float]] = {
    "motives": {
        "personal_grievance": 30, "municipal_decision": 35, "intolerance": 10, "entitlement": 12,
        "right_wing": 12, "left_wing": 3, "religious": 2, "conspiracy": 10, "radical_protest": 3,
        "anti_israel": 1.5, "unknown": 15, "other": 4,
    },
    "bias": {
        "racism": 6, "antisemitism": 3, "anti_muslim": 2, "antigypsyism": 0.5, "misogyny": 8,
        "anti_lgbtiq": 2, "disability": 0.5, "origin": 3, "religion": 1, "other": 2,
    },
    "triggers": {
        "refugees_integration": 15, "pandemic": 4, "energy_wind": 8, "traffic_construction": 12,
        "budget_taxes": 8, "schools_childcare": 5, "election_campaign": 10, "other": 15,
    },
    "consequences": {
        "psychological": 45, "physical": 4, "reputation": 15, "material_loss": 6, "family_burden": 20,
        "behaviour_change": 30, "considered_resigning": 12, "not_standing_again": 8, "resigned": 1.5,
        "none": 12, "other": 3,
    },
}  # fmt: skip
_DEFAULT_ANSWER_PERCENT = 1.0


def month_sequence(last_month: str, months: int) -> list[str]:
    """The ``months`` calendar months ending with ``last_month`` ("YYYY-MM"), oldest first."""
    year, month = int(last_month[:4]), int(last_month[5:7])
    index = year * 12 + month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - months + 1, index + 1)]


def _weights(codes: list[str], table: dict[str, float]) -> NDArray[np.float64]:
    raw = np.array([table.get(code, _DEFAULT_TYPE_WEIGHT) for code in codes], dtype=np.float64)
    share: NDArray[np.float64] = raw / raw.sum()
    return share


def generate(
    year_end_month: str,
    months: int = 12,
    reports_per_year: int = 2400,
    seed: int = 7,
    *,
    policies_dir: Path | None = None,
) -> list[ExtractRow]:
    """Rows received in the ``months`` months up to ``year_end_month``, in receipt order (by month).

    Vectorised over reporters and reports, so a million rows take seconds (benchmarks use that size).
    """
    where = policies_dir or PROJECT_ROOT / "policies"
    taxonomy = load_taxonomy(where)
    districts = load_districts(where)
    rng = np.random.default_rng(seed)
    month_names = month_sequence(year_end_month, months)
    target = round(reports_per_year * months / 12)
    if target <= 0:
        return []

    # Reporters and how often each files, until the target number of reports is reached.
    mean = float((_REPORTS_PER_REPORTER * np.arange(1, 7)).sum())
    counts = rng.choice(np.arange(1, 7), size=int(target / mean * 1.2) + 10, p=_REPORTS_PER_REPORTER)
    while counts.sum() < target:
        counts = np.concatenate([counts, rng.choice(np.arange(1, 7), size=100, p=_REPORTS_PER_REPORTER)])
    reporters = int(np.searchsorted(np.cumsum(counts), target)) + 1
    counts = counts[:reporters]
    counts[-1] -= int(counts.sum()) - target

    land_codes, offices, types, channels = _domains(taxonomy, districts)
    reporter_land = rng.choice(len(land_codes), size=reporters, p=_land_weights(districts, land_codes))
    office_keys = list(_OFFICE_WEIGHTS)
    office_p = np.array([_OFFICE_WEIGHTS[key] for key in office_keys])
    reporter_office = rng.choice(len(office_keys), size=reporters, p=office_p / office_p.sum())

    # Reports: the first at a uniform month, the rest of a series a few weeks apart (0, 1, 2 ... months).
    owner = np.repeat(np.arange(reporters), counts)
    starts_at = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(target) - np.repeat(starts_at, counts)
    gaps = np.where(position == 0, 0, rng.geometric(0.55, size=target) - 1)
    offset = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[starts_at], counts)
    # A series that runs past the window's end continues at its start (as if the window were a circle):
    # that keeps every month equally likely, where clipping would pile reports into the last month.
    first = rng.integers(0, months, size=reporters)
    month_index = (first[owner] + offset) % months

    type_index = rng.choice(len(types), size=target, p=_weights(types, _TYPE_WEIGHTS))
    keep = rng.random(target) < _SAME_TYPE_AS_PREVIOUS
    for step in range(1, int(counts.max())):
        follow = (position == step) & keep
        type_index[follow] = type_index[np.nonzero(follow)[0] - 1]
    second = np.where(
        rng.random(target) < _SECOND_CODE_SHARE, rng.integers(0, len(_SECOND_CODES), size=target), -1
    )
    channel_index = rng.choice(len(channels), size=target, p=_weights(channels, _CHANNEL_WEIGHTS))
    lag = rng.geometric(0.6, size=target) - 1
    unknown_incident = rng.random(target) < _INCIDENT_MONTH_UNKNOWN
    # Drawn after everything above, so that a seed gives the same reports as before the questions existed.
    answers = _answers(rng, taxonomy, reporters)
    # The answers go with a reporter's first report: the earliest month (a series may wrap around).
    first_row = np.lexsort((position, month_index, owner))[np.concatenate([[0], np.cumsum(counts)[:-1]])]
    is_first = np.zeros(target, dtype=bool)
    is_first[first_row] = True

    # An office the taxonomy has retired or renamed falls back to "other" rather than producing bad rows.
    office_of = [key if key in offices else "other" for key in office_keys]
    classified: dict[tuple[str, ...], tuple[str, tuple[str, ...], int]] = {}
    all_months = month_sequence(year_end_month, months + int(lag.max()) + 1)
    lead = len(all_months) - months
    rows: list[ExtractRow] = []
    for i in range(target):
        codes = [types[type_index[i]]]
        if second[i] >= 0 and _SECOND_CODES[second[i]] not in codes:
            codes.append(_SECOND_CODES[second[i]])
        key = tuple(codes)
        if key not in classified:
            info = classification(taxonomy, codes)
            classified[key] = (info["primary_type"], tuple(info["type_codes"]), info["severity_group"])
        primary, sorted_codes, severity = classified[key]
        reporter = int(owner[i])
        m = int(month_index[i])
        rows.append(
            ExtractRow(
                reporter_pseudonym=f"syn{seed}-{reporter:07d}",
                receipt_month=month_names[m],
                incident_month=None if unknown_incident[i] else all_months[lead + m - int(lag[i])],
                land=land_codes[reporter_land[reporter]],
                primary_type=primary,
                type_codes=sorted_codes,
                channel=channels[channel_index[i]],
                office=office_of[reporter_office[reporter]],
                severity_group=severity,
                # The KoMo answers on a report's first incident only (None: not asked).
                motives=answers[reporter].get("motives") if is_first[i] else None,
                bias=answers[reporter].get("bias") if is_first[i] else None,
                triggers=answers[reporter].get("triggers") if is_first[i] else None,
                consequences=answers[reporter].get("consequences") if is_first[i] else None,
            )
        )
    rows.sort(key=lambda row: row.receipt_month)
    return rows


def _answers(
    rng: np.random.Generator, taxonomy: Taxonomy, reporters: int
) -> list[dict[str, tuple[str, ...]]]:
    """Each reporter's KoMo answers by kind (top-level codes; empty where the questions stayed closed)."""
    answered = rng.random(reporters) < _ANSWERED
    by_kind: dict[str, list[tuple[str, ...]]] = {}
    for kind, percent in _ANSWER_PERCENT.items():
        codes = [str(item.code) for item in taxonomy.items(kind)]
        share = np.array([percent.get(code, _DEFAULT_ANSWER_PERCENT) / 100 for code in codes])
        ticked = (rng.random((reporters, len(codes))) < share) & answered[:, None]
        if "none" in codes:
            # "none" and a consequence exclude each other.
            others = np.delete(ticked, codes.index("none"), axis=1).any(axis=1)
            ticked[others, codes.index("none")] = False
        masks = ticked @ (1 << np.arange(len(codes), dtype=np.int64))
        cache: dict[int, tuple[str, ...]] = {}
        by_kind[kind] = [
            cache.setdefault(int(m), tuple(c for bit, c in enumerate(codes) if int(m) >> bit & 1))
            for m in masks
        ]
    return [{kind: values[r] for kind, values in by_kind.items()} for r in range(reporters)]


def _domains(
    taxonomy: Taxonomy, districts: Districts
) -> tuple[list[str], set[str | None], list[str], list[str]]:
    land_codes = [land.code for land in districts.lands]
    offices: set[str | None] = {*taxonomy.valid_codes("offices"), None}
    types = sorted(taxonomy.valid_codes("incident_types"), key=taxonomy.all_type_codes().index)
    channels = [str(item.code) for item in taxonomy.items("channels")]
    return land_codes, offices, types, channels


def _land_weights(districts: Districts, land_codes: list[str]) -> NDArray[np.float64]:
    population = np.array([districts.land_population(code) for code in land_codes], dtype=np.float64)
    share: NDArray[np.float64] = population / population.sum()
    return share
