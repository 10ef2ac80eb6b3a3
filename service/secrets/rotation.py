"""What rotating each server secret means, and the work that needs the old and the new value together.

One entry of ``ROTATIONS`` per secret: adding a secret to the service (``service.config.SECRET_NAMES``)
means adding its entry here, and ``tests/secrets`` fails until one exists. The command line prints an entry's
``protects`` and ``consequences`` before it runs; ``rekey`` runs in one transaction with the old value as
the previous one (a failure midway changes nothing); ``remaining`` counts what still depends on the
previous value.

``keep`` says how long the previous value stays readable:

- ``Keep.none``: only for ``rekey``; dropped as soon as it has run (embedded mode at once, production at
  ``--finish``).
- ``Keep.until_done``: until ``remaining`` is 0 (re-keyed one by one at their owners' next sign-in); then
  ``--finish`` drops it.
- ``Keep.always``: the audit key: the chain's older segments are verified with it for good.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.auth.models import RecoveryCode, WebSession
from service.auth.service import AccountService
from service.cases.contact import open_address, seal_address
from service.cases.events import event_token
from service.cases.models import Case, EventLink
from service.config import SECRET_NAMES, Secrets, Settings
from service.crypto import DecryptionError, keyed_hash, pepper_id, sealed_pepper_id
from service.extract.models import StatisticsExtract
from service.identity.models import Organisation, StaffUser
from service.matching.models import PerpetratorToken
from service.ratelimit.models import RateLimitCounter

# Statistics rows of purged cases keep a pseudonym that no live case maps to; they get one under the new key
# that nobody can compute from a case id (their case is gone anyway), so the old key links nothing any more.
RETIRED_PSEUDONYM_PURPOSE = "reporter-pseudonym-retired"
RETIRED_EVENT_PURPOSE = "event-retired"


class Keep(StrEnum):
    none = "none"
    until_done = "until_done"
    always = "always"


@dataclass(frozen=True)
class Rekeyed:
    """What a re-keying step did: counts for the audit event, lines for the operator (names, no values)."""

    counts: dict[str, int]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rotation:
    name: str
    # One sentence: what the secret protects (and what its holder could do with it).
    protects: str
    # What a rotation does to the running service, printed before it runs (and in docs/runbooks.md).
    consequences: tuple[str, ...]
    keep: Keep
    # The work with both values, in one transaction: ``secrets`` holds the new value as current and the old
    # one as previous. Idempotent: a second run finds nothing left to do.
    rekey: Callable[[Session, Secrets, Settings], Rekeyed] | None = None
    # What still depends on the previous value (Keep.until_done).
    remaining: Callable[[Session, Secrets], int] | None = None
    # ``rekey`` cannot do without the previous value (it opens or maps what is under it).
    rekey_needs_previous: bool = False

    @property
    def variable(self) -> str:
        return f"RUECKHALT_{self.name.upper()}"


# -- the re-keying steps -------------------------------------------------------------------------------------


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _end_sessions_and_reseal_second_factors(
    session: Session, secrets: Secrets, settings: Settings
) -> Rekeyed:
    accounts = AccountService(
        secrets.session_key,
        key_peppers=secrets.key_peppers,
        previous_session_keys=secrets.previous_of("session_key"),
    )
    ended = _count(session.execute(delete(WebSession)))
    resealed = unreadable = 0
    for user in session.scalars(select(StaffUser).order_by(StaffUser.email)):
        try:
            resealed += accounts.reseal_totp(user)
        except DecryptionError:
            unreadable += 1
    # Recovery codes are stored only as keyed hashes of codes nobody here knows: they cannot move to the new
    # key. Their owners make new ones (/konto/zwei-faktor, with the password and an authenticator code).
    holders = session.scalars(
        select(StaffUser.email)
        .where(StaffUser.id.in_(select(RecoveryCode.user_id)))
        .order_by(StaffUser.email)
    ).all()
    retired = _count(session.execute(delete(RecoveryCode)))
    notes = [f"{ended} sessions ended (staff and reporters sign in again)."]
    if holders:
        notes.append(
            "Recovery codes cannot be re-keyed and were retired; these accounts make new ones at "
            "/konto/zwei-faktor (password and authenticator code):"
        )
        notes += [f"    {email}" for email in holders]
    if unreadable:
        notes.append(
            f"{unreadable} authenticator secrets opened under no configured session key: those accounts "
            "need `rueckhalt user reset`."
        )
    return Rekeyed(
        {"sessions_ended": ended, "totp_resealed": resealed, "recovery_codes_retired": retired},
        tuple(notes),
    )


def _restart_rate_limits(session: Session, secrets: Secrets, settings: Settings) -> Rekeyed:
    # Counters under the old key name (an HMAC of) client addresses that the old key could test guesses
    # against: they go now, not when their window ends.
    deleted = _count(session.execute(delete(RateLimitCounter)))
    in_redis = 0
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            keys = list(client.scan_iter(match="rl:*", count=1000))
            for start in range(0, len(keys), 500):
                in_redis += int(client.delete(*keys[start : start + 500]))
        finally:
            client.close()
    return Rekeyed(
        {"counters_deleted": deleted + in_redis},
        (f"{deleted + in_redis} rate-limit counters deleted: every window starts afresh.",),
    )


def _drop_matching_tokens(session: Session, secrets: Secrets, settings: Settings) -> Rekeyed:
    # A token is an HMAC of an identifier the server never keeps in clear: it cannot be recomputed under the
    # new key without the case key, which only the reporter and the holders have. So every token goes, and
    # the identifiers, still sealed in their cases, wait to be looked up again (docs/matching.md).
    dropped = _count(session.execute(delete(PerpetratorToken)))
    waiting = int(
        session.scalar(select(func.count()).select_from(Case).where(Case.perpetrator_ciphertext.is_not(None)))
        or 0
    )
    return Rekeyed(
        {"tokens_deleted": dropped, "cases_waiting": waiting},
        (
            f"{dropped} matching tokens deleted; {waiting} cases keep their identifiers sealed and are "
            "looked up again under the new key when their reporter next signs in on /fall, or when a "
            "counsellor holding the case presses 'Abgleich jetzt ausführen' on its page (within the "
            "hourly budget of look-ups).",
        ),
    )


def _reseal_addresses(session: Session, secrets: Secrets, settings: Settings) -> Rekeyed:
    current = secrets.notification_key
    resealed = unreadable = 0
    rows = session.execute(
        select(Case.id, Case.notify_ciphertext).where(Case.notify_ciphertext.is_not(None)).order_by(Case.id)
    ).all()
    for case_id, sealed in rows:
        assert sealed is not None
        try:
            open_address(current, case_id, sealed)
            continue
        except DecryptionError:
            pass
        try:
            address = open_address(current, case_id, sealed, secrets.previous_of("notification_key"))
        except DecryptionError:
            unreadable += 1
            continue
        session.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(notify_ciphertext=seal_address(current, case_id, address))
            .execution_options(synchronize_session=False)
        )
        resealed += 1
    hooked = session.scalars(
        select(Organisation.slug).where(Organisation.webhook_url.is_not(None)).order_by(Organisation.slug)
    ).all()
    notes = [f"{resealed} reporters' notification addresses re-sealed under the new key."]
    if unreadable:
        notes.append(f"{unreadable} addresses opened under no configured key and stay as they were.")
    if hooked:
        notes.append(
            "Webhook signing secrets are derived from this key and have CHANGED. Tell each organisation, "
            "print its new secret with `rueckhalt org webhook SLUG URL` (same URL) and have it set there; "
            "until then its receiver refuses the signatures:"
        )
        notes += [f"    {slug}" for slug in hooked]
    return Rekeyed(
        {"addresses_resealed": resealed, "unreadable": unreadable, "webhooks": len(hooked)}, tuple(notes)
    )


def _pseudonym(key: bytes, case_id: str) -> str:
    return keyed_hash(key, "reporter-pseudonym", case_id.encode()).hex()


def _rekey_column(
    session: Session,
    column: InstrumentedAttribute[str] | InstrumentedAttribute[str | None],
    subjects: Iterable[str],
    derive: Callable[[bytes, str], str],
    keys: tuple[bytes, tuple[bytes, ...]],
    retired_purpose: str,
) -> tuple[int, int]:
    """Move a keyed column of the statistics rows from the previous keys to the new one; (moved, retired).

    ``derive(key, subject)`` is the column's value for a subject (a case id, an event id) that still
    exists: each old value maps to the new key's value. A value no subject derives any more (its case
    purged, its event ended) gets one stable new value per old one, which keeps its rows counted together
    and which neither key can link to anything."""
    new_key, old_keys = keys
    mapping: dict[str, str] = {}
    current: set[str] = set()
    for subject in subjects:
        new = derive(new_key, subject)
        current.add(new)
        for old in old_keys:
            mapping[derive(old, subject)] = new
    moved = retired = 0
    for value in session.scalars(select(column).where(column.is_not(None)).distinct()).all():
        if value is None or value in current:
            continue
        target = mapping.get(value)
        if target is None:
            target = keyed_hash(new_key, retired_purpose, value.encode()).hex()
            retired += 1
        else:
            moved += 1
        session.execute(
            update(StatisticsExtract)
            .where(column == value)
            .values({column.key: target})
            .execution_options(synchronize_session=False)
        )
    return moved, retired


def _map_pseudonyms(session: Session, secrets: Secrets, settings: Settings) -> Rekeyed:
    keys = (secrets.statistics_key, secrets.previous_of("statistics_key"))
    moved, retired = _rekey_column(
        session,
        StatisticsExtract.reporter_pseudonym,
        session.scalars(select(Case.id)).all(),
        _pseudonym,
        keys,
        RETIRED_PSEUDONYM_PURPOSE,
    )
    # Left under the old key, an incident linked after the rotation would get the new event token and its
    # event would count twice; and the old key would still join the rows to ``event_link``.
    events_moved, events_retired = _rekey_column(
        session,
        StatisticsExtract.event_key,
        session.scalars(select(EventLink.event_id).distinct()).all(),
        event_token,
        keys,
        RETIRED_EVENT_PURPOSE,
    )
    return Rekeyed(
        {
            "pseudonyms_moved": moved,
            "pseudonyms_retired": retired,
            "events_moved": events_moved,
            "events_retired": events_retired,
        },
        (
            f"{moved} reporters' statistics pseudonyms moved to the new key, {retired} of purged cases "
            "replaced by ones nobody can link to a case.",
            f"{events_moved} linked events' statistics tokens moved to the new key, {events_retired} of "
            "ended events replaced.",
        ),
    )


# -- what still depends on the previous value ----------------------------------------------------------------


def cases_under_previous_pepper(session: Session, secrets: Secrets) -> int:
    current = pepper_id(secrets.lookup_pepper).hex()
    found = session.scalar(
        select(func.count())
        .select_from(Case)
        .where(or_(Case.lookup_key_id.is_(None), Case.lookup_key_id != current))
    )
    return int(found or 0)


def name_unrecorded_lookup_keys(session: Session, secrets: Secrets) -> int:
    """Before a lookup pepper rotation begins: rows from before the id was recorded are under this pepper."""
    result = session.execute(
        update(Case)
        .where(Case.lookup_key_id.is_(None))
        .values(lookup_key_id=pepper_id(secrets.lookup_pepper).hex())
        .execution_options(synchronize_session=False)
    )
    return _count(result)


def accounts_under_previous_key_pepper(session: Session, secrets: Secrets) -> int:
    current = pepper_id(secrets.key_pepper)
    count = 0
    for sealed_key, initial in session.execute(
        select(StaffUser.sealed_private_key, StaffUser.initial_password_seal)
    ):
        sealed = sealed_key if sealed_key is not None else initial
        if sealed is not None and sealed_pepper_id(sealed) != current:
            count += 1
    return count


# -- the table -----------------------------------------------------------------------------------------------

ROTATIONS: dict[str, Rotation] = {
    rotation.name: rotation
    for rotation in (
        Rotation(
            "lookup_pepper",
            "the way from a receipt to its case (an HMAC of the receipt under it): with a database dump and "
            "this "
            "pepper, receipt guesses can be tested offline, and a receipt learnt elsewhere finds its case in "
            "the dump; without it a dump does not tell which case a receipt belongs to.",
            (
                "Receipts keep working: a receipt is looked up under the new pepper, then under the previous "
                "one; a case found under the previous one is re-keyed at that moment (its reporter's next "
                "sign-in).",
                "The previous pepper stays until every case is re-keyed (`rueckhalt secrets status` counts "
                "them); `--finish` then drops it. A case still under it after that can no longer be found by "
                "its receipt (--finish refuses while any is left, unless --force).",
            ),
            Keep.until_done,
            remaining=cases_under_previous_pepper,
        ),
        Rotation(
            "statistics_key",
            "the reporter pseudonym of the anonymous statistics rows (an HMAC of the case id): with it and "
            "the "
            "database, each statistics row can be joined to its case, also after the case was purged.",
            (
                "The statistics rows of every case are given the pseudonym under the new key in one "
                "transaction, so a reporter still counts once in the privacy budget and the thresholds; rows "
                "of purged cases get new pseudonyms that the old key links to nothing. The tokens that make "
                "linked incidents count as one event move the same way.",
                "Snapshots and public releases already made stay as they were (they hold no pseudonym).",
            ),
            Keep.none,
            rekey=_map_pseudonyms,
            rekey_needs_previous=True,
        ),
        Rotation(
            "session_key",
            "authenticator (TOTP) secrets at rest, recovery-code hashes, the staff API's CSRF tokens, form "
            "tokens and the known-browser marks of the sign-in limits.",
            (
                "Sessions end: every staff and reporter session is deleted; everyone signs in again.",
                "Authenticator secrets are re-sealed under the new key in one transaction (the apps keep "
                "working).",
                "Unused recovery codes cannot be re-keyed (only their hashes are stored): they are retired "
                "and "
                "their owners make new ones at /konto/zwei-faktor; the accounts are listed.",
                "Open forms must be reloaded; every browser counts as unknown once for the sign-in limits.",
            ),
            Keep.none,
            rekey=_end_sessions_and_reseal_second_factors,
            rekey_needs_previous=True,
        ),
        Rotation(
            "ratelimit_key",
            "the keys of the rate-limit counters (an HMAC of the client address under a daily key): with it "
            "and the counters (database or Redis), the addresses of recent clients can be found by trying "
            "every address.",
            (
                "Rate-limit windows restart: every counter is deleted (database and Redis), every client "
                "gets a "
                "fresh allowance; a flood in progress gets one too.",
                "Sessions are not affected.",
            ),
            Keep.none,
            rekey=_restart_rate_limits,
        ),
        Rotation(
            "audit_key",
            "the audit chain's MACs and the daily checkpoints' signatures: with it, someone who can write to "
            "the database could rewrite the audit log without `rueckhalt audit verify` noticing (up to the "
            "last checkpoint kept outside).",
            (
                "A new segment of the audit chain begins: its first event (audit.segment_begun) is linked to "
                "the old head and written under the new key, so the old segment cannot be rewritten any "
                "more, "
                "even by a holder of the old key.",
                "The old key stays as RUECKHALT_AUDIT_KEY_PREVIOUS (embedded: secrets/audit_key.previous) "
                "FOR "
                "GOOD: `rueckhalt audit verify` checks each segment with its own key, and checkpoints mailed "
                "before the rotation carry the old key's signature.",
                "Every process must run with the new key: one still running with the old key refuses to "
                "append.",
            ),
            Keep.always,
        ),
        Rotation(
            "notification_key",
            "reporters' notification addresses (sealed under it) and every organisation's webhook signing "
            "secret (derived from it): with it and the database, the addresses can be read and webhooks "
            "forged.",
            (
                "Reporters' notification addresses are re-sealed under the new key in one transaction (a "
                "failure midway changes nothing); mails to them keep going out.",
                "Webhook signing secrets change: each organisation with a webhook must set its new secret "
                "(the organisations are listed; `rueckhalt org webhook SLUG URL` prints each).",
            ),
            Keep.none,
            rekey=_reseal_addresses,
            rekey_needs_previous=True,
        ),
        Rotation(
            "key_pepper",
            "the staff private keys (sealed under the password and this pepper): with it and a database "
            "dump, "
            "staff passwords can be guessed offline at one Argon2id run per guess.",
            (
                "Staff keys keep opening: a key under the previous pepper is re-sealed under the new one at "
                "its owner's next sign-in (or password change).",
                "The previous pepper stays until every account has signed in (`rueckhalt secrets status` "
                "counts them); `--finish` then drops it. An account still under it after that needs a reset "
                "and a new grant (--finish refuses while any is left, unless --force).",
            ),
            Keep.until_done,
            remaining=accounts_under_previous_key_pepper,
        ),
        Rotation(
            "matching_key",
            "the tokens of the repeat-perpetrator matching (HMACs of normalised names, handles, numbers, "
            "addresses and plates) and their case references: with it and the database, a guessed identifier "
            "can be tested against every token, and tokens can be joined to their cases (docs/matching.md).",
            (
                "Every matching token is deleted at once: a token cannot be recomputed under the new key "
                "without the case key. Matches found so far stay on the case pages only while the tokens "
                "exist, so they disappear too.",
                "The identifiers stay sealed in their cases: a case page shows them as waiting, and they are "
                "looked up again under the new key, nobody typing them again, when the reporter next signs "
                "in on /fall or a counsellor holding the case presses 'Abgleich jetzt ausführen' on its "
                "page (both within the hourly budget of look-ups; a case whose consent was withdrawn has "
                "no identifiers left and is never looked up).",
            ),
            Keep.none,
            rekey=_drop_matching_tokens,
        ),
    )
}

assert set(ROTATIONS) == set(SECRET_NAMES), "every server secret needs its entry in ROTATIONS"
