"""``rueckhalt backup DEST | keygen | prune`` and ``rueckhalt restore SRC --key FILE`` (docs/backup.md).

Messages to the operator come German first, then English, like the service's pages. Nothing printed holds a
secret: the check values name the server secrets a restore needs without revealing them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from service.backup.archive import ARCHIVE_SUFFIX, SecretCheck
from service.backup.errors import BackupError, Refusal
from service.backup.restore import RestoreResult, restore_backup
from service.backup.service import BackupResult, prune_archives, write_backup
from service.config import SECRET_NAMES, Mode, Settings, load_secrets
from service.crypto import (
    CryptoError,
    PrivateKey,
    PublicKey,
    backup_key_id,
    decode_private_key,
    decode_public_key,
    encode_private_key,
    encode_public_key,
    generate_keypair,
)

# A key file is a few hundred bytes; anything far larger is not one.
MAX_KEY_FILE_BYTES = 64 * 1024


class _WriteByDefault(TyperGroup):
    """``rueckhalt backup DEST`` is ``rueckhalt backup write DEST``: a first word that names no subcommand
    is the destination (``rueckhalt backup write ./keygen`` writes to a file called keygen)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["write", *args]
        return super().parse_args(ctx, args)


backup_app = typer.Typer(
    name="backup",
    cls=_WriteByDefault,
    help="Encrypted backups: `rueckhalt backup DEST` writes one (docs/backup.md); keygen makes the key pair.",
    no_args_is_help=True,
    add_completion=False,
)

_settings_source: Callable[[], Settings] | None = None


def _settings() -> Settings:
    assert _settings_source is not None, "register() mounts these commands"
    return _settings_source()


def _refused(what_de: str, what_en: str, error: BackupError, *, nothing: bool) -> typer.Exit:
    typer.echo(f"{what_de} / {what_en}:", err=True)
    typer.echo(f"  {error.german}", err=True)
    typer.echo(f"  {error.english}", err=True)
    if nothing:
        typer.echo("  Es wurde nichts wiederhergestellt. / Nothing was restored.", err=True)
    return typer.Exit(1)


def _fail(german: str, english: str, code: int = 2) -> typer.Exit:
    typer.echo(f"Fehler / error: {german}", err=True)
    typer.echo(f"  {english}", err=True)
    return typer.Exit(code)


class _Bar:
    """A progress bar on standard error when it is a terminal; silent otherwise (cron, logs, tests)."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, label: str, total: int) -> None:
        if not sys.stderr.isatty() or total <= 0:
            return
        self._bar = typer.progressbar(length=total, label=label, file=sys.stderr, show_eta=True)
        self._bar.__enter__()

    def advance(self, amount: int) -> None:
        if self._bar is not None:
            self._bar.update(amount)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def configured_public_key(settings: Settings) -> PublicKey:
    """The key in RUECKHALT_BACKUP_PUBLIC_KEY, or else in the file RUECKHALT_BACKUP_PUBLIC_KEY_FILE."""
    text = settings.backup_public_key
    source = "RUECKHALT_BACKUP_PUBLIC_KEY"
    if not text and settings.backup_public_key_file is not None:
        source = str(settings.backup_public_key_file)
        try:
            text = settings.backup_public_key_file.read_text(encoding="utf-8")[:MAX_KEY_FILE_BYTES]
        except OSError as exc:
            raise BackupError(
                Refusal.no_public_key,
                f"{source} ist nicht lesbar ({exc.strerror}).",
                f"cannot read {source} ({exc.strerror}).",
            ) from None
    if not text:
        raise BackupError(
            Refusal.no_public_key,
            "kein Sicherungsschlüssel eingestellt: `rueckhalt backup keygen` erzeugt ihn; dann "
            "RUECKHALT_BACKUP_PUBLIC_KEY oder RUECKHALT_BACKUP_PUBLIC_KEY_FILE setzen.",
            "no backup key configured: make one with `rueckhalt backup keygen`, then set "
            "RUECKHALT_BACKUP_PUBLIC_KEY or RUECKHALT_BACKUP_PUBLIC_KEY_FILE.",
        )
    try:
        return decode_public_key(text)
    except CryptoError as exc:
        raise BackupError(
            Refusal.bad_key, f"{source}: kein gültiger öffentlicher Sicherungsschlüssel.", f"{source}: {exc}."
        ) from None


def _print_secrets(checks: tuple[SecretCheck, ...]) -> None:
    for check in checks:
        typer.echo(f"  {check.variable:38} Prüfwert / check {check.check}")


def _print_backup(result: BackupResult) -> None:
    size_mb = result.archive_bytes / 1_000_000
    typer.echo(f"Sicherung geschrieben / backup written: {result.path} ({size_mb:.1f} MB)")
    typer.echo(
        f"  Datenbank / database: {result.database.value} (migration {result.revision or '-'}); "
        f"{result.blobs} Dateien / files ({result.blob_bytes / 1_000_000:.1f} MB); "
        f"{result.policy_files} policy files"
    )
    typer.echo(
        f"  verschlüsselt für Sicherungsschlüssel / encrypted to backup key {result.key_id}: only its "
        "private key opens it."
    )
    if result.audit_head is not None:
        typer.echo(
            f"  Audit-Kopf / audit head: {result.audit_head} (the restore checks the chain against it)"
        )
    typer.echo("")
    typer.echo("Das Archiv enthält KEINE Server-Geheimnisse. Eine Wiederherstellung braucht, getrennt")
    typer.echo("davon aufbewahrt:")
    typer.echo("The archive holds NO server secrets. A restore needs, kept apart from it:")
    _print_secrets(result.secrets)
    typer.echo(f"  und den privaten Sicherungsschlüssel / and the backup private key {result.key_id}")


@backup_app.command("write")
def write_command(
    destination: Annotated[
        Path, typer.Argument(metavar="DEST", help="A new file, or a folder for rueckhalt-<UTC time>.rhbk")
    ],
) -> None:
    """Write one encrypted archive: database, blob folder, policy files, audit head. Never the secrets."""
    settings = _settings()
    try:
        public = configured_public_key(settings)
        result = write_backup(settings, load_secrets(settings), public, destination, progress=_Bar())
    except BackupError as exc:
        raise _refused("Sicherung nicht geschrieben", "backup not written", exc, nothing=False) from None
    _print_backup(result)


def _write_private(path: Path, private: PrivateKey, key_id: str) -> None:
    text = (
        f"# Rückhalt: privater Sicherungsschlüssel / backup private key {key_id}\n"
        "# Offline aufbewahren (Papier, Datenträger im Safe), nie auf dem Server.\n"
        "# Keep it offline (paper, a medium in a safe), never on the server. It opens every archive\n"
        "# made for this key; `rueckhalt restore ARCHIVE --key THIS_FILE` needs it.\n"
        f"{encode_private_key(private)}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@backup_app.command("keygen")
def keygen_command(
    private_key_file: Annotated[
        Path,
        typer.Option("--private-key-file", help="Where to write the private key (a new file; move it away)"),
    ],
    public_key_file: Annotated[
        Path | None,
        typer.Option(
            "--public-key-file",
            help="Where to write the public key (default: RUECKHALT_BACKUP_PUBLIC_KEY_FILE, else printed)",
        ),
    ] = None,
) -> None:
    """Make the backup key pair (ML-KEM-768 + X25519): the private key to a file, the public key printed."""
    settings = _settings()
    private, public = generate_keypair()
    key_id = backup_key_id(public)
    try:
        _write_private(private_key_file, private, key_id)
    except FileExistsError:
        raise _fail(
            f"{private_key_file} gibt es schon; ein Schlüssel wird nie überschrieben.",
            f"{private_key_file} exists already; a key is never overwritten.",
        ) from None
    except OSError as exc:
        raise _fail(f"{private_key_file}: {exc.strerror}", f"cannot write {private_key_file}") from None
    encoded = encode_public_key(public)
    target = public_key_file or settings.backup_public_key_file
    typer.echo(f"Sicherungsschlüssel / backup key {key_id}")
    typer.echo(f"  privat / private: {private_key_file} (0600)")
    typer.echo("  Bringen Sie diese Datei vom Server weg und bewahren Sie sie offline auf (zwei Kopien,")
    typer.echo("  zwei Orte).")
    typer.echo("  Move this file off the server and keep it offline (two copies in two places).")
    if target is not None:
        target.write_text(encoded + "\n", encoding="utf-8")
        typer.echo(f"  öffentlich / public: {target} (RUECKHALT_BACKUP_PUBLIC_KEY_FILE={target.resolve()})")
    else:
        typer.echo("  öffentlich / public (set RUECKHALT_BACKUP_PUBLIC_KEY to this line):")
        typer.echo(encoded)


@backup_app.command("prune")
def prune_command(
    folder: Annotated[Path, typer.Argument(help="The folder the archives are written to")],
    keep_days: Annotated[
        int | None, typer.Option("--keep-days", min=1, help="Default: RUECKHALT_BACKUP_KEEP_DAYS (30)")
    ] = None,
) -> None:
    """Delete archives (rueckhalt-<time>.rhbk) older than the period; the newest one is always kept."""
    settings = _settings()
    days = keep_days or settings.backup_keep_days
    if not folder.is_dir():
        raise _fail(f"{folder} ist kein Ordner.", f"{folder} is not a folder.")
    result = prune_archives(folder, days)
    for path in result.deleted:
        typer.echo(f"gelöscht / deleted: {path.name}")
    typer.echo(
        f"{len(result.deleted)} Archive gelöscht, {len(result.kept)} behalten (älter als {days} Tage "
        f"wird gelöscht) / {len(result.deleted)} archives deleted, {len(result.kept)} kept (older than "
        f"{days} days go)"
    )
    if result.newest_too_old is not None:
        typer.echo(
            f"WARNUNG / WARNING: das neueste Archiv {result.newest_too_old.name} ist älter als {days} Tage: "
            "laufen die Sicherungen noch? / the newest archive is older than the period: are backups still "
            "running?",
            err=True,
        )
        raise typer.Exit(1)


def _missing_embedded_secrets(settings: Settings) -> list[str]:
    """Secrets the embedded mode would generate afresh: a restore must never run on new ones."""
    if settings.mode is not Mode.embedded:
        return []
    folder = settings.data_dir / "secrets"
    return [
        f"RUECKHALT_{name.upper()}"
        for name in SECRET_NAMES
        if getattr(settings, name) is None and not (folder / f"{name}.key").exists()
    ]


def _read_private_key(path: Path) -> PrivateKey:
    try:
        with path.open("r", encoding="utf-8") as handle:
            text = handle.read(MAX_KEY_FILE_BYTES)
    except (OSError, UnicodeDecodeError):
        raise _fail(f"{path} ist nicht lesbar.", f"cannot read {path}.") from None
    try:
        return decode_private_key(text)
    except CryptoError as exc:
        raise _fail(f"{path}: kein privater Sicherungsschlüssel.", f"{path}: {exc}.") from None


def _print_restore(result: RestoreResult) -> None:
    typer.echo(f"Wiederhergestellt / restored: Sicherung vom / backup of {result.created_at}")
    typer.echo(
        f"  Datenbank / database: {result.database.value} (migration {result.revision or '-'}); "
        f"{result.blobs} Dateien / files ({result.blob_bytes / 1_000_000:.1f} MB)"
    )
    typer.echo(f"  Richtlinien des Archivs / the archive's policy files: {result.policies_dir}")
    for item in result.policies:
        if item.status != "same":
            typer.echo(f"    {item.name}: {item.status} (compared with RUECKHALT_POLICIES_DIR)")
    if all(item.status == "same" for item in result.policies):
        typer.echo("    identisch mit / the same as RUECKHALT_POLICIES_DIR")
    if result.needs_migration:
        typer.echo("  Als Nächstes / next: rueckhalt migrate (the archive is from an older release)")


def restore_command(
    source: Annotated[
        Path, typer.Argument(metavar="SRC", help=f"An archive ({ARCHIVE_SUFFIX}) of `rueckhalt backup`")
    ],
    key: Annotated[
        Path, typer.Option("--key", metavar="PRIVATE_KEY_FILE", help="The backup private key (from keygen)")
    ],
) -> None:
    """Restore an archive into an EMPTY database and data folder; verify it all first, the audit chain after.

    Needs the server secrets of the backup's day (in the environment, or DATA_DIR/secrets in embedded mode).
    """
    settings = _settings()
    missing = _missing_embedded_secrets(settings)
    if missing:
        raise _fail(
            "die Server-Geheimnisse fehlen: "
            + ", ".join(missing)
            + " (in der Umgebung oder DATA_DIR/secrets/). "
            "Eine Wiederherstellung braucht die Geheimnisse vom Tag der Sicherung.",
            "the server secrets are missing: "
            + ", ".join(missing)
            + " (environment or DATA_DIR/secrets/). A "
            "restore needs the secrets of the backup's day.",
        )
    private = _read_private_key(key)
    if not source.is_file():
        raise _fail(f"{source} gibt es nicht.", f"{source} does not exist.")
    try:
        result = restore_backup(settings, load_secrets(settings), private, source, progress=_Bar())
    except BackupError as exc:
        raise _refused("Wiederherstellung abgelehnt", "restore refused", exc, nothing=True) from None
    _print_restore(result)
    audit = result.audit
    if not audit.ok:
        typer.echo(
            f"AUDIT-KETTE GEBROCHEN / audit chain BROKEN at seq {audit.first_bad_seq}: {audit.problem} — "
            f"{audit.explanation}. {audit.finding}",
            err=True,
        )
        typer.echo(
            "Die Daten sind wiederhergestellt, aber die Kette stimmt nicht: als Sicherheitsvorfall "
            "behandeln. / The data is restored but the chain does not verify: treat it as a security "
            "incident.",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"Audit-Kette intakt / audit chain intact: {audit.checked} events checked")
    if result.audit_head_at_backup is not None:
        typer.echo(
            f"  enthält den Kopf der Sicherung / holds the backup's head {result.audit_head_at_backup.seq}"
        )


def register(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    """Mount ``backup`` and ``restore``; ``settings`` is the main command line's checked settings."""
    global _settings_source
    _settings_source = settings
    app.add_typer(backup_app, name="backup")
    app.command("restore")(restore_command)
