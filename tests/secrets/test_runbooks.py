"""The runbooks name only commands and options that exist: every `rueckhalt ...` in docs/runbooks.md (and the
secret-rotation lines of the README and docs/key-custody.md) is looked up in the command line's own tree, the
one `rueckhalt --help` prints, down to its options."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer

from service.cli import app
from service.config import PROJECT_ROOT, SECRET_NAMES

DOCUMENTS = ("docs/runbooks.md", "README.md", "docs/key-custody.md", "docs/metrics.md", "docs/backup.md")
# A command in running text: inside backticks, from `rueckhalt` on.
_COMMAND = re.compile(r"`(rueckhalt [^`]+)`")


def commands_in(path: str) -> list[str]:
    text = (PROJECT_ROOT / path).read_text(encoding="utf-8")
    found = [" ".join(match.split()) for match in _COMMAND.findall(text)]
    # `a && b` names two commands.
    return [part.strip() for line in found for part in line.split("&&") if part.strip()]


def is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def resolve(line: str) -> tuple[Any, list[str]]:
    """The command a line names (typer's own click objects) and the words after it."""
    command: Any = typer.main.get_command(app)
    words = line.split()[1:]
    while words and is_group(command):
        name = words[0]
        if name not in command.commands and "write" in command.commands and not name.startswith("-"):
            name, words = "write", ["write", *words]  # `rueckhalt backup DEST` is `backup write DEST`
        if name not in command.commands:
            break
        command, words = command.commands[name], words[1:]
    return command, words


@pytest.mark.parametrize("path", DOCUMENTS)
def test_every_command_a_document_names_exists_with_its_options(path: str) -> None:
    lines = commands_in(path)
    if path == "docs/runbooks.md":
        assert len(lines) >= 15, "the runbooks name their commands"
    for line in lines:
        command, rest = resolve(line)
        if is_group(command):
            # A group is named alone (or with --help); a word after it must be one of its commands.
            assert all(word.startswith("--") for word in rest), f"{path}: `{line}` names no command"
        options = {"--help"} | {name for param in command.params for name in getattr(param, "opts", [])}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=")[0] in options, f"{path}: `{line}`: {word} is no option of it"
        if command.name == "rotate" and rest and not rest[0].startswith("-") and rest[0].islower():
            assert rest[0] in SECRET_NAMES, f"{path}: `{line}` names no secret"


def test_the_runbooks_cover_every_secret_and_the_four_incidents() -> None:
    text = (PROJECT_ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
    for name in SECRET_NAMES:
        assert f"`RUECKHALT_{name.upper()}`" in text
    for heading in ("## A leaked secret", "## A lost organisation key", "## A compromised staff account"):
        assert heading in text
    assert "## A stolen backup" in text


def test_the_help_lists_the_commands_the_runbooks_rely_on() -> None:
    from typer.testing import CliRunner

    shown = CliRunner().invoke(app, ["--help"]).output
    for group in ("secrets", "audit", "user", "org", "backup", "restore"):
        assert group in shown
    assert "rotate" in CliRunner().invoke(app, ["secrets", "--help"]).output
