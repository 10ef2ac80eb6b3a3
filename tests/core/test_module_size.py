"""No module in service/ grows past 500 lines (issue 17): a module that long holds more than one thing,
and its reader cannot keep it in view. Split it by what it does, as reports/my_case.py was split from
reports/case_pages.py, rather than raising the bound."""

from __future__ import annotations

from pathlib import Path

LIMIT = 500
SERVICE = Path(__file__).resolve().parents[2] / "service"


def test_no_module_in_service_is_longer_than_the_limit() -> None:
    lengths = {
        path.relative_to(SERVICE.parent).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in SERVICE.rglob("*.py")
    }
    assert len(lengths) > 100, "the walk found the package"
    too_long = {name: count for name, count in lengths.items() if count > LIMIT}
    assert not too_long, f"modules over {LIMIT} lines: {too_long}"
