"""The district list (Destatis, 31.12.2018): 401 districts in 16 Länder, populations for rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.taxonomy import LANDS, Districts, PolicyFileError, load_districts

POLICIES = Path(__file__).resolve().parents[2] / "policies"
HEADER = "AGS;type;name;NUTS3;area_km2;population;population_male;population_female;population_per_km2\n"

# Per Land: (districts, population) as of 31.12.2018.
EXPECTED = {
    "01": (15, 2_896_712),
    "02": (1, 1_841_179),
    "03": (45, 7_982_448),
    "04": (2, 682_986),
    "05": (53, 17_932_651),
    "06": (26, 6_265_809),
    "07": (36, 4_084_844),
    "08": (44, 11_069_533),
    "09": (96, 13_076_721),
    "10": (6, 990_509),
    "11": (1, 3_644_826),
    "12": (18, 2_511_917),
    "13": (8, 1_609_675),
    "14": (13, 4_077_937),
    "15": (14, 2_208_321),
    "16": (23, 2_143_145),
}


@pytest.fixture(scope="module")
def districts() -> Districts:
    return load_districts(POLICIES)


def test_401_districts_in_16_laender(districts: Districts) -> None:
    assert len(districts) == 401
    assert len(districts.lands) == 16
    assert [land.code for land in districts.lands] == [f"{n:02d}" for n in range(1, 17)]


def test_population_sums(districts: Districts) -> None:
    for land, (count, population) in EXPECTED.items():
        assert len(districts.districts_of(land)) == count, land
        assert districts.land_population(land) == population, land
    assert districts.total_population() == 83_019_213
    assert sum(districts.land_population(land.code) for land in LANDS) == districts.total_population()


def test_look_ups(districts: Districts) -> None:
    munich = districts.district("09162")
    assert munich is not None
    assert munich.name.startswith("München")
    assert munich.land == "09"
    assert munich.population > 1_000_000
    assert districts.district("99999") is None
    assert districts.districts_of("17") == ()
    bavaria = districts.land("09")
    assert bavaria is not None
    assert (bavaria.name.de, bavaria.name.en, bavaria.abbr) == ("Bayern", "Bavaria", "BY")
    assert districts.has_prefix("091")
    assert not districts.has_prefix("0999")


def test_attribution_ships_beside_the_file() -> None:
    readme = (POLICIES / "districts.README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in readme
    assert "Destatis" in readme


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    (tmp_path / "districts.csv").write_text(header + body, encoding="utf-8")
    return tmp_path


def test_an_operator_can_replace_the_file(tmp_path: Path) -> None:
    body = "".join(f"{n:02d}001;Landkreis;Kreis {n};;;{1000 * n};;;\n" for n in range(1, 17))
    districts = load_districts(write(tmp_path, body))
    assert len(districts) == 16
    assert districts.land_population("16") == 16_000


def test_bad_rows_are_refused_naming_the_line(tmp_path: Path) -> None:
    body = "".join(f"{n:02d}001;Landkreis;Kreis {n};;;1000;;;\n" for n in range(1, 17))
    body += (
        "17001;Landkreis;Nirgendwo;;;5;;;\n01001;Landkreis;Doppelt;;;5;;;\n01002;Landkreis;Leer;;;viele;;;\n"
    )
    with pytest.raises(PolicyFileError) as caught:
        load_districts(write(tmp_path, body))
    message = str(caught.value)
    assert "line 18: AGS must be 5 digits" in message
    assert "line 19: AGS 01001 appears twice" in message
    assert "line 20: population must be a whole number" in message


def test_missing_columns_and_missing_laender_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="missing column"):
        load_districts(write(tmp_path, "01001;x\n", header="AGS;name\n"))
    with pytest.raises(PolicyFileError, match="no district for Land code"):
        load_districts(write(tmp_path, "01001;Landkreis;Kreis;;;1000;;;\n"))
