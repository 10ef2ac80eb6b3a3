"""``rueckhalt policy check | explain | test`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from service.routing import load_policy
from service.routing.cli import policy_app, set_org_source

runner = CliRunner()
POLICIES = Path(__file__).resolve().parents[2] / "policies"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(policy_app, list(args))
    return result.exit_code, result.output


def test_policy_test_runs_every_case_and_passes() -> None:
    code, output = invoke("test", "--policies-dir", str(POLICIES))
    assert code == 0, output
    lines = output.splitlines()
    assert [cell.strip() for cell in lines[0].split("|")] == ["case", "expected", "got", "ok"]
    case_files = sorted((POLICIES / "tests").glob("*.yaml"))
    assert len(case_files) >= 6
    assert "0 not as expected" in lines[-1]
    assert int(lines[-1].split(":")[1].split()[0]) >= 30


def test_policy_test_exits_1_on_a_mismatch(policies_copy: Path) -> None:
    (policies_copy / "tests" / "99-wrong.yaml").write_text(
        "name: Bayern geht nach Sachsen?\n"
        'report: {land: "09", type_codes: [A1], channel: letter}\n'
        "expected_targets: [beratung-sn]\n",
        encoding="utf-8",
    )
    code, output = invoke("test", "--policies-dir", str(policies_copy))
    assert code == 1
    row = next(line for line in output.splitlines() if line.startswith("Bayern geht nach Sachsen?"))
    assert "targets=[beratung-sn]" in row
    assert "targets=[beratung-by]" in row
    assert row.rstrip().endswith("FAIL")
    assert "1 not as expected" in output


def test_policy_test_reports_broken_case_files(policies_copy: Path) -> None:
    (policies_copy / "tests" / "98-broken.yaml").write_text(
        '- name: Ohne Kanal\n  report: {land: "09", type_codes: [A1]}\n  expected_targets: [beratung-by]\n'
        '- name: Falscher Code\n  report: {land: "09", type_codes: [A99], channel: letter}\n'
        "  expected_targets: [beratung-by]\n",
        encoding="utf-8",
    )
    code, output = invoke("test", "--policies-dir", str(policies_copy))
    assert code == 1
    assert "[0].report.channel: Field required" in output
    assert "unknown codes: type_codes: A99" in output
    assert output.count("ERROR") == 2


def test_policy_test_without_cases_fails(tmp_path: Path) -> None:
    code, output = invoke("test", "--policies-dir", str(POLICIES), "--cases-dir", str(tmp_path))
    assert code == 1
    assert "no test cases found" in output


def test_policy_check_passes_on_the_demo() -> None:
    code, output = invoke("check", "--policies-dir", str(POLICIES))
    assert code == 0, output
    assert output.strip().endswith("0 error(s), 0 warning(s)")


def test_policy_check_uses_the_injected_organisation_source() -> None:
    set_org_source(lambda: {"rufbereitschaft": True, "beratung-by": False})
    code, output = invoke("check", "--policies-dir", str(POLICIES))
    assert code == 1
    assert "ERROR: organisation beratung-sn is not set up in the service" in output
    assert "WARNING: organisation beratung-by has no key: routing skips it until it has one" in output


def test_policy_check_warnings_alone_exit_0() -> None:
    set_org_source(
        lambda: {"rufbereitschaft": True} | {slug: slug != "online-hass" for slug in _demo_slugs()}
    )
    code, output = invoke("check", "--policies-dir", str(POLICIES))
    assert code == 0, output
    assert "0 error(s), 1 warning(s)" in output


def test_policy_check_exits_1_on_a_broken_policy(policies_copy: Path) -> None:
    text = (policies_copy / "routing.yaml").read_text(encoding="utf-8")
    (policies_copy / "routing.yaml").write_text(text.replace("types_any: [A]", "types_any: [A3f]"))
    code, output = invoke("check", "--policies-dir", str(policies_copy))
    assert code == 1
    assert "unknown incident type code 'A3f'" in output


def _demo_slugs() -> list[str]:
    return [org.slug for org in load_policy(POLICIES).organisations]


def write_report(tmp_path: Path, **fields: object) -> Path:
    report = {"land": "09", "district_ags": "09162", "type_codes": ["A3a"], "channel": "email"} | fields
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def test_policy_explain_shows_rules_and_decision(tmp_path: Path) -> None:
    code, output = invoke("explain", str(write_report(tmp_path)), "--policies-dir", str(POLICIES))
    assert code == 0, output
    assert "[x] land=09 in [09]" in output
    assert "[ ] urgency=normal not in [acute]" in output
    assert "not evaluated: rule land-by matched and stops evaluation" in output
    assert "target beratung-by (Beratungsstelle Rückhalt Bayern (Demo))" in output
    assert "target online-hass" in output
    assert "severity=4" in output  # derived from the taxonomy, not given


def test_policy_explain_with_an_organisation_without_key(tmp_path: Path) -> None:
    set_org_source(lambda: {slug: slug != "beratung-by" for slug in _demo_slugs()})
    report = write_report(tmp_path, channel="letter", type_codes=["A1"])
    code, output = invoke("explain", str(report), "--policies-dir", str(POLICIES))
    assert code == 0, output
    assert "(no key: beratung-by)" in output
    assert "!! skipped_unreachable: target beratung-by has no key" in output
    assert "fallback used: yes" in output


def test_policy_explain_refuses_bad_reports(tmp_path: Path) -> None:
    code, output = invoke(
        "explain", str(write_report(tmp_path, channel="pigeon")), "--policies-dir", str(POLICIES)
    )
    assert code == 2
    assert "channel: pigeon" in output
    code, output = invoke("explain", str(write_report(tmp_path, severity=1)), "--policies-dir", str(POLICIES))
    assert code == 2
    assert "severity: Extra inputs are not permitted" in output
