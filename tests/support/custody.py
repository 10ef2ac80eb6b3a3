"""An adversary's workbench for the key-custody tests: what they hold, and every way it could open a case.

``cases_opened`` takes a dump of the database (every row of every table, as a thief or an operator would have
it) and a bag of loot (passwords and shares seen, server secrets, copies of keys, receipts) and tries every
path the formats allow from the loot to a case data key: staff keys opened with a password (under each
pepper held, and without one), organisation epoch keys from member grants, from recovery wraps opened with k
shares, from the format-1 recovery key, copies held directly, and finally the case key grants and the
reporter's wrap (with the receipts it holds and those a kept answer of the report form yields to it). What it
returns is the set of cases whose data key the adversary can have.

It is deliberately generous: every candidate password is tried against every account, every candidate share
set against every organisation, every key copy against every grant regardless of its epoch.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, MetaData, select

from service.crypto import (
    Context,
    CryptoError,
    PrivateKey,
    combine_shares,
    keyed_hash,
    keypair_from_seed,
    open_private_key,
    open_sealed,
    open_with_password,
    open_with_password_and_pepper,
    parse_share,
    recovery_wrapping_key,
    unwrap_for_reporter,
    unwrap_key,
    unwrap_private_key,
)
from service.crypto.errors import InvalidReceipt
from service.identity.grants import grant_wrap_context, member_key_context
from service.identity.recovery import recovery_epoch_context

Dump = dict[str, list[dict[str, Any]]]

# Tokens in printed output that could be a password, a share, a recovery key or a receipt.
_TOKEN = re.compile(r"[^\s'\"`,;()<>]{12,}")


def dump_database(engine: Engine) -> Dump:
    """Every row of every table, as plain values (what ``pg_dump`` or a copy of the SQLite file holds)."""
    metadata = MetaData()
    metadata.reflect(engine)
    dump: Dump = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            dump[table.name] = [dict(row._mapping) for row in connection.execute(select(table))]
    return dump


def tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text))


@dataclass
class Loot:
    passwords: set[str] = field(default_factory=set)
    shares: set[str] = field(default_factory=set)
    # Format-1 organisation recovery keys (52 characters), as `org create` printed them before.
    recovery_keys: set[str] = field(default_factory=set)
    peppers: list[bytes] = field(default_factory=list)
    receipts: set[str] = field(default_factory=set)
    organisation_keys: list[PrivateKey] = field(default_factory=list)
    # Staff private keys held outright (opened from an older backup, say).
    staff_keys: list[PrivateKey] = field(default_factory=list)

    def add_text(self, text: str) -> None:
        """Everything printed that could be a secret goes into every pocket."""
        found = tokens(text)
        self.passwords |= found
        self.shares |= found
        self.recovery_keys |= found
        self.receipts |= found


def _staff_keys(dump: Dump, loot: Loot) -> dict[str, list[PrivateKey]]:
    keys: dict[str, list[PrivateKey]] = {}
    peppers = tuple(loot.peppers)
    for user in dump["staff_user"]:
        sealed = user.get("sealed_private_key")
        if not sealed:
            continue
        context = Context("user_private", record_id=user["id"])
        for password in loot.passwords:
            raw: bytes | None = None
            try:
                if sealed[0] == 1:
                    raw = open_with_password(password, bytes(sealed), context)
                elif peppers:
                    raw = open_with_password_and_pepper(password, bytes(sealed), context, peppers)
            except (CryptoError, ValueError):
                raw = None
            if raw is not None:
                keys.setdefault(user["id"], []).append(PrivateKey(raw))
                break
    return keys


def _recovery_keys(dump: Dump, loot: Loot) -> dict[str, list[PrivateKey]]:
    """Recovery private keys per organisation from every k-subset of the candidate shares."""
    parsed = []
    for text in loot.shares:
        try:
            parsed.append(parse_share(text))
        except InvalidReceipt:
            continue
    found: dict[str, list[PrivateKey]] = {}
    for organisation in dump["organisation"]:
        public = organisation.get("recovery_public_key")
        threshold = organisation.get("recovery_threshold")
        if not public or not threshold:
            continue
        for combination in itertools.combinations(parsed, threshold):
            try:
                secret = combine_shares(list(combination))
            except ValueError:
                continue
            private, candidate = keypair_from_seed(secret)
            if candidate.raw == bytes(public):
                found.setdefault(organisation["id"], []).append(private)
                break
    return found


def _epoch_keys(dump: Dump, loot: Loot) -> dict[tuple[str, int], list[PrivateKey]]:
    epoch_keys: dict[tuple[str, int], list[PrivateKey]] = {}

    def add(organisation_id: str, epoch: int, key: PrivateKey) -> None:
        epoch_keys.setdefault((organisation_id, epoch), []).append(key)

    staff = _staff_keys(dump, loot)
    for user in dump["staff_user"]:
        staff.setdefault(user["id"], []).extend(loot.staff_keys)
    # Format 1 kept the one grant in the membership row (epoch 1, the same contexts).
    grants = [
        *dump.get("member_key_grant", []),
        *(m for m in dump["membership"] if m.get("wrapped_grant_key")),
    ]
    for grant in grants:
        for key in staff.get(grant["user_id"], []):
            org_id, user_id, epoch = grant["organisation_id"], grant["user_id"], grant.get("epoch", 1)
            try:
                grant_key = unwrap_key(
                    bytes(grant["wrapped_grant_key"]), key, grant_wrap_context(org_id, user_id, epoch)
                )
                add(
                    org_id,
                    epoch,
                    open_private_key(
                        bytes(grant["sealed_organisation_key"]),
                        grant_key,
                        member_key_context(org_id, user_id, epoch),
                    ),
                )
            except CryptoError:
                continue
    recovery = _recovery_keys(dump, loot)
    for row in dump.get("organisation_key_epoch", []):
        wrapped = row.get("recovery_wrapped_private_key")
        if not wrapped:
            continue
        for key in recovery.get(row["organisation_id"], []):
            try:
                add(
                    row["organisation_id"],
                    row["epoch"],
                    unwrap_private_key(
                        bytes(wrapped), key, recovery_epoch_context(row["organisation_id"], row["epoch"])
                    ),
                )
            except CryptoError:
                continue
    for organisation in dump["organisation"]:
        sealed = organisation.get("recovery_sealed_private_key")
        if not sealed:
            continue
        for text in loot.recovery_keys:
            try:
                key = open_private_key(
                    bytes(sealed),
                    recovery_wrapping_key(text),
                    Context("org_private", record_id=organisation["id"], field="recovery"),
                )
            except (CryptoError, InvalidReceipt):
                continue
            add(organisation["id"], 1, key)
    return epoch_keys


def cases_opened(dump: Dump, loot: Loot) -> set[str]:
    """The ids of the cases whose data key the loot reaches in this dump."""
    epoch_keys = _epoch_keys(dump, loot)
    opened: set[str] = set()
    for grant in dump["case_key_grant"]:
        context = Context("case_key", case_id=grant["case_id"], record_id=grant["organisation_id"])
        candidates: Iterable[PrivateKey] = [
            *epoch_keys.get((grant["organisation_id"], grant.get("epoch", 1)), []),
            *loot.organisation_keys,
        ]
        for key in candidates:
            try:
                unwrap_key(bytes(grant["wrapped_key"]), key, context)
            except CryptoError:
                continue
            opened.add(grant["case_id"])
            break
    receipts = loot.receipts | _kept_receipts(dump, loot)
    for case in dump["case_file"]:
        for receipt in receipts:
            try:
                unwrap_for_reporter(
                    bytes(case["reporter_wrapped_key"]),
                    receipt,
                    bytes(case["reporter_salt"]),
                    Context("reporter_key", case_id=case["id"]),
                )
            except (CryptoError, InvalidReceipt, ValueError):
                continue
            opened.add(case["id"])
            break
    return opened


def _kept_receipts(dump: Dump, loot: Loot) -> set[str]:
    """Receipts kept for a second tap on the report form or an API client's retry (service/reports/
    answer_again.py), opened with any key the loot can derive: a keyed hash, under any server secret held,
    of any text held as a form token or Idempotency-Key (every printed token, every password), or of what
    the row itself stores."""
    found: set[str] = set()
    for row in dump.get("submission_token", []):
        if row.get("answer") is None:
            continue
        token_hash = bytes(row["token_hash"])
        context = Context("submission_answer", record_id=token_hash.hex())
        held = {text.encode() for text in loot.receipts | loot.passwords}
        # An API client's Idempotency-Key alone, or with an empty body, stands in for key and body.
        texts = held | {text + b"\x00" for text in held} | {token_hash, token_hash.hex().encode()}
        for secret, label, text in itertools.product(loot.peppers, _ANSWER_KEY_LABELS, texts):
            try:
                answer = open_sealed(keyed_hash(secret, label, text), bytes(row["answer"]), context)
            except (CryptoError, ValueError):
                continue
            found.add(json.loads(answer)["receipt"])
            break
    return found


# The report form's token and an API client's key (service/reports/submissions.py).
_ANSWER_KEY_LABELS = ("submission-answer-key/v1", "idempotency-answer-key/v1")


def secrets_in(folder: Any) -> list[bytes]:
    """Every server secret in a data folder (``secrets/*.key``, hex), as an operator holds them."""
    return [bytes.fromhex(path.read_text().strip()) for path in sorted(folder.rglob("*.key"))]


def shares_in(html: str) -> list[str]:
    """The recovery shares on the page that shows them once (each group may be followed by ``<wbr>``)."""
    codes = re.findall(r'<code class="share-code"[^>]*>(.*?)</code>', html, flags=re.DOTALL)
    return [code.replace("<wbr>", "") for code in codes]
