"""Loading the taxonomy refuses what it does not understand, and says where in the file the problem is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from service.taxonomy import PolicyFileError, load_taxonomy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SOURCE = (POLICIES / "taxonomy.yaml").read_text(encoding="utf-8")


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "taxonomy.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def load_error(tmp_path: Path, text: str) -> PolicyFileError:
    with pytest.raises(PolicyFileError) as caught:
        load_taxonomy(write(tmp_path, text))
    return caught.value


def test_a_severity_written_as_text_is_refused_with_file_and_path(tmp_path: Path) -> None:
    text = SOURCE.replace("        severity: 4  # coercion", '        severity: "4"  # coercion')
    error = load_error(tmp_path, text)
    message = str(error)
    assert str(tmp_path / "taxonomy.yaml") in message
    assert "incident_types[0] (A).children[3] (A4).severity" in message


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    text = SOURCE.replace('        statute: "§ 130 StGB"\n', '        statue: "§ 130 StGB"\n')
    assert "(A6).statue" in str(load_error(tmp_path, text))


def test_a_duplicate_code_is_refused(tmp_path: Path) -> None:
    text = SOURCE.replace("      - code: A13\n", "      - code: A12\n")
    assert "duplicate incident type code A12" in str(load_error(tmp_path, text))


def test_a_type_code_outside_the_grammar_or_its_group_is_refused(tmp_path: Path) -> None:
    assert "must lie below its parent A" in str(
        load_error(tmp_path, SOURCE.replace("code: A13\n", "code: B13\n"))
    )
    assert "must be a type (A3)" in str(load_error(tmp_path, SOURCE.replace("code: A13\n", "code: A13a\n")))


def test_a_type_without_severity_is_refused(tmp_path: Path) -> None:
    text = SOURCE.replace("        severity: 6\n", "")
    assert "(A10): severity missing" in str(load_error(tmp_path, text))


def test_a_child_channel_must_carry_its_parent_code(tmp_path: Path) -> None:
    text = SOURCE.replace("{code: in_person.home,", "{code: inperson.home,")
    assert "a child code starts with its parent" in str(load_error(tmp_path, text))


def test_a_channel_must_say_whether_it_is_online(tmp_path: Path) -> None:
    text = SOURCE.replace(
        "    label: {de: Telefon, en: Phone}\n    online: false\n", "    label: {de: Telefon, en: Phone}\n"
    )
    assert "channels[1] (phone): online: true or false is required" in str(load_error(tmp_path, text))


def test_required_urgency_codes_cannot_be_dropped(tmp_path: Path) -> None:
    text = SOURCE.replace("  - code: high\n", "  - code: soon\n")
    assert "needs the codes high" in str(load_error(tmp_path, text))


def test_duplicate_yaml_keys_are_refused_with_the_line(tmp_path: Path) -> None:
    text = SOURCE.replace("version: 1\n", "version: 1\nversion: 1\n", 1)
    message = str(load_error(tmp_path, text))
    assert "duplicate key 'version'" in message
    assert "line " in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="file not found"):
        load_taxonomy(tmp_path)


def test_the_loader_caches_until_the_file_changes(tmp_path: Path) -> None:
    shutil.copy(POLICIES / "taxonomy.yaml", tmp_path / "taxonomy.yaml")
    first = load_taxonomy(tmp_path)
    assert load_taxonomy(tmp_path) is first
    file = tmp_path / "taxonomy.yaml"
    file.write_text(SOURCE.replace("{de: Beleidigung, en: Insult}", "{de: Beleidigung, en: Insult (edited)}"))
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = load_taxonomy(tmp_path)
    assert second is not first
    assert second.label("incident_types", "A1", "en") == "Insult (edited)"
