"""Why a backup or a restore stopped: a code to test against and the operator's message in German and English.

Messages name files, tools and settings, never content of the database or of the archive.
"""

from __future__ import annotations

from enum import StrEnum


class Refusal(StrEnum):
    no_public_key = "no_public_key"
    bad_key = "bad_key"
    destination_exists = "destination_exists"
    tool_missing = "tool_missing"
    tool_failed = "tool_failed"
    not_an_archive = "not_an_archive"
    wrong_key = "wrong_key"
    damaged = "damaged"
    unreadable_contents = "unreadable_contents"
    not_authentic = "not_authentic"
    other_secrets = "other_secrets"
    database_kind = "database_kind"
    newer_release = "newer_release"
    database_not_empty = "database_not_empty"
    data_dir_not_empty = "data_dir_not_empty"


class BackupError(Exception):
    """A backup or restore that did not happen; ``german`` first, then ``english``, as the CLI prints them."""

    def __init__(self, refusal: Refusal, german: str, english: str) -> None:
        super().__init__(english)
        self.refusal = refusal
        self.german = german
        self.english = english
