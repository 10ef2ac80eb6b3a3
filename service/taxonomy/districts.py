"""The 16 Länder and the ~400 districts (``policies/districts.csv``, Destatis, CC BY 4.0).

Reports carry the Land and at most the district (5-digit AGS), never the municipality; routing rules may
select by Land or AGS prefix, and statistics need populations for rates per 100,000 inhabitants. The district
list is a file an operator can replace with a newer Gemeindeverzeichnis export (districts merge); the Länder
are fixed by the Basic Law and live here.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from service.taxonomy.files import PolicyFileError, Problem
from service.taxonomy.loader import Label

DISTRICTS_FILE = "districts.csv"
_AGS = re.compile(r"^[0-9]{5}$")
_REQUIRED_COLUMNS = ("AGS", "name", "population")


@dataclass(frozen=True, slots=True)
class Land:
    code: str  # "01" .. "16", the first two digits of the AGS
    abbr: str  # "BY": used in organisation slugs such as beratung-by
    name: Label


@dataclass(frozen=True, slots=True)
class District:
    ags: str
    name: str
    land: str
    population: int
    kind: str = ""  # Landkreis, Kreisfreie Stadt, Kreis, Stadtkreis, Regionalverband
    nuts3: str = ""
    area_km2: float | None = None


LANDS: tuple[Land, ...] = (
    Land("01", "SH", Label(de="Schleswig-Holstein", en="Schleswig-Holstein")),
    Land("02", "HH", Label(de="Hamburg", en="Hamburg")),
    Land("03", "NI", Label(de="Niedersachsen", en="Lower Saxony")),
    Land("04", "HB", Label(de="Bremen", en="Bremen")),
    Land("05", "NW", Label(de="Nordrhein-Westfalen", en="North Rhine-Westphalia")),
    Land("06", "HE", Label(de="Hessen", en="Hesse")),
    Land("07", "RP", Label(de="Rheinland-Pfalz", en="Rhineland-Palatinate")),
    Land("08", "BW", Label(de="Baden-Württemberg", en="Baden-Württemberg")),
    Land("09", "BY", Label(de="Bayern", en="Bavaria")),
    Land("10", "SL", Label(de="Saarland", en="Saarland")),
    Land("11", "BE", Label(de="Berlin", en="Berlin")),
    Land("12", "BB", Label(de="Brandenburg", en="Brandenburg")),
    Land("13", "MV", Label(de="Mecklenburg-Vorpommern", en="Mecklenburg-Western Pomerania")),
    Land("14", "SN", Label(de="Sachsen", en="Saxony")),
    Land("15", "ST", Label(de="Sachsen-Anhalt", en="Saxony-Anhalt")),
    Land("16", "TH", Label(de="Thüringen", en="Thuringia")),
)
LAND_CODES: frozenset[str] = frozenset(land.code for land in LANDS)


class Districts:
    """Länder and districts with look-ups; immutable and shared."""

    def __init__(self, districts: tuple[District, ...]) -> None:
        self.lands: tuple[Land, ...] = LANDS
        self._lands = {land.code: land for land in LANDS}
        self._by_ags = {district.ags: district for district in districts}
        self._by_land: dict[str, tuple[District, ...]] = {
            land.code: tuple(d for d in districts if d.land == land.code) for land in LANDS
        }

    def __iter__(self) -> Iterator[District]:
        return iter(self._by_ags.values())

    def __len__(self) -> int:
        return len(self._by_ags)

    def land(self, code: str) -> Land | None:
        return self._lands.get(code)

    def districts_of(self, land: str) -> tuple[District, ...]:
        """The districts of a Land in file order; empty for an unknown Land code."""
        return self._by_land.get(land, ())

    def district(self, ags: str) -> District | None:
        """``None`` for an unknown key: callers validate user input with it."""
        return self._by_ags.get(ags)

    def land_population(self, land: str) -> int:
        return sum(district.population for district in self.districts_of(land))

    def total_population(self) -> int:
        return sum(district.population for district in self)

    def has_prefix(self, prefix: str) -> bool:
        """Whether any district's AGS starts with ``prefix`` (routing rules select districts by prefix)."""
        return any(ags.startswith(prefix) for ags in self._by_ags)


def parse_districts(text: str, file: Path) -> Districts:
    """Parse the ``;``-separated export; ``PolicyFileError`` names the line of every problem."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";")
    columns = reader.fieldnames or []
    missing = [column for column in _REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise PolicyFileError(file, [Problem("line 1", f"missing column(s): {', '.join(missing)}")])
    problems: list[Problem] = []
    districts: list[District] = []
    seen: set[str] = set()
    for row in reader:
        where = f"line {reader.line_num}"
        ags = (row.get("AGS") or "").strip()
        name = (row.get("name") or "").strip()
        if not _AGS.match(ags) or ags[:2] not in LAND_CODES:
            problems.append(Problem(where, "AGS must be 5 digits starting with a Land code 01-16"))
            continue
        if ags in seen:
            problems.append(Problem(where, f"AGS {ags} appears twice"))
            continue
        seen.add(ags)
        if not name:
            problems.append(Problem(where, "name is empty"))
        try:
            population = int((row.get("population") or "").strip())
            if population < 0:
                raise ValueError
        except ValueError:
            problems.append(Problem(where, "population must be a whole number >= 0"))
            continue
        try:
            area = float(row["area_km2"]) if (row.get("area_km2") or "").strip() else None
        except ValueError:
            problems.append(Problem(where, "area_km2 must be a number"))
            continue
        districts.append(
            District(
                ags=ags,
                name=name,
                land=ags[:2],
                population=population,
                kind=(row.get("type") or "").strip(),
                nuts3=(row.get("NUTS3") or "").strip(),
                area_km2=area,
            )
        )
    lands = {district.land for district in districts}
    absent = sorted(LAND_CODES - lands)
    if absent and not problems:
        problems.append(Problem("", f"no district for Land code(s) {', '.join(absent)}"))
    if problems:
        raise PolicyFileError(file, problems)
    return Districts(tuple(districts))


@functools.lru_cache(maxsize=8)
def _load_cached(file: Path, _mtime_ns: int, _size: int) -> Districts:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PolicyFileError(file, [Problem("", "not UTF-8 text")]) from None
    return parse_districts(text, file)


def load_districts(policies_dir: Path) -> Districts:
    """Load ``<policies_dir>/districts.csv``; cached until the file changes."""
    file = (policies_dir / DISTRICTS_FILE).resolve()
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise PolicyFileError(file, [Problem("", "file not found")]) from None
    return _load_cached(file, stat.st_mtime_ns, stat.st_size)
