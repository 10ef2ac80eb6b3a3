"""The runtime of one CLI command: built from the environment, disposed at the end, errors as exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from service.runtime import Runtime


@contextmanager
def cli_runtime() -> Iterator[Runtime]:
    # Imported here: the runtime pulls in every feature, and importing a CLI module should stay cheap.
    from service.config import ConfigurationError, get_settings
    from service.runtime import build_runtime
    from service.taxonomy import PolicyFileError

    try:
        runtime = build_runtime(get_settings())
    except ConfigurationError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    except PolicyFileError as exc:
        typer.echo(f"policy error:\n{exc}", err=True)
        raise typer.Exit(2) from None
    try:
        yield runtime
    finally:
        runtime.dispose()
