"""Templates compile once per process, and again when their source changes (service.web.CompiledTemplates).

Every application builds its own Jinja environment (its footer's legal links are its own); the compiled
code is shared between them through a bytecode cache. What must hold: a second application renders
without compiling, both render the same page, and an edited template is never served from old code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader

from service.legal_links import LegalLinks
from service.web import CompiledTemplates, make_templates


def _counting_compiles(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    compiled: list[str | None] = []
    original = Environment.compile

    def compile_and_count(self: Environment, *args: Any, **kwargs: Any) -> Any:
        compiled.append(args[1] if len(args) > 1 else kwargs.get("name"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", compile_and_count)
    return compiled


def test_a_second_application_renders_without_compiling_again(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _counting_compiles(monkeypatch)
    first = make_templates(LegalLinks("/impressum-a", "/datenschutz-a", True, True))
    second = make_templates(LegalLinks("/impressum-b", "/datenschutz-b", True, True))
    assert first is not second
    assert first.bytecode_cache is second.bytecode_cache

    first.get_template("pages/index.html")
    before = len(compiled)
    assert second.get_template("pages/index.html") is not first.get_template("pages/index.html")
    assert len(compiled) == before, "the second environment took the compiled code"


def test_each_environment_keeps_its_own_globals(tmp_path: Path) -> None:
    """Shared code, not shared state: the same compiled template renders each application's own values."""
    (tmp_path / "footer.html").write_text("{{ legal }}", encoding="utf-8")
    cache = CompiledTemplates()
    shown = []
    for legal in ("Impressum A", "Impressum B"):
        env = Environment(loader=FileSystemLoader(tmp_path), bytecode_cache=cache, autoescape=True)
        env.globals["legal"] = legal
        shown.append(env.get_template("footer.html").render())
    assert shown == ["Impressum A", "Impressum B"]


def test_an_edited_template_is_compiled_anew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _counting_compiles(monkeypatch)
    page = tmp_path / "page.html"
    cache = CompiledTemplates()

    def render() -> str:
        env = Environment(loader=FileSystemLoader(tmp_path), bytecode_cache=cache, autoescape=True)
        return env.get_template("page.html").render(name="<b>")

    page.write_text("Hallo {{ name }}", encoding="utf-8")
    assert render() == "Hallo &lt;b&gt;"
    assert render() == "Hallo &lt;b&gt;"
    assert compiled == ["page.html"], "compiled once for two environments"

    page.write_text("Guten Tag {{ name }}", encoding="utf-8")
    assert render() == "Guten Tag &lt;b&gt;", "the old code is not served for a new source"
    assert compiled == ["page.html", "page.html"]
