"""The recovery key of an organisation: Shamir shares held by named custodians (k of n), never whole.

docs/key-custody.md. The shares are made when the first key pair is (or renewed), shown once and never
stored; k of them give back the recovery private key, which opens every live epoch it was wrapped to.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.crypto import (
    Context,
    InvalidReceipt,
    PrivateKey,
    PublicKey,
    combine_shares,
    keypair_from_seed,
    parse_share,
    split_secret,
    unwrap_private_key,
)
from service.identity.grants import CustodyError, live_epochs
from service.identity.models import Organisation

DEFAULT_THRESHOLD = 2
DEFAULT_SHARES = 3
MAX_CUSTODIANS = 16
CUSTODIAN_NAME_CHARS = 120


def recovery_epoch_context(organisation_id: str, epoch: int) -> Context:
    return Context("org_private", record_id=organisation_id, field=f"recovery#{epoch}")


@dataclass(frozen=True)
class CustodianShare:
    custodian: str
    share: str


def clean_custodians(names: Iterable[str], threshold: int) -> list[str]:
    cleaned = [" ".join(name.split()) for name in names]
    cleaned = [name for name in cleaned if name]
    if len(cleaned) < 2 or len(cleaned) > MAX_CUSTODIANS:
        raise CustodyError("custodians", f"name between 2 and {MAX_CUSTODIANS} custodians, one per line")
    if any(len(name) > CUSTODIAN_NAME_CHARS or not name.isprintable() for name in cleaned):
        raise CustodyError(
            "custodian_name", f"a custodian's name has at most {CUSTODIAN_NAME_CHARS} printable characters"
        )
    if len({name.casefold() for name in cleaned}) != len(cleaned):
        raise CustodyError("custodian_twice", "each custodian is named once")
    if not 2 <= threshold <= len(cleaned):
        raise CustodyError(
            "threshold", "the number of shares needed must be at least 2 and at most the number of custodians"
        )
    return cleaned


def new_recovery(
    organisation: Organisation, custodians: list[str], threshold: int
) -> tuple[PublicKey, list[CustodianShare]]:
    secret = secrets.token_bytes(32)
    _, public = keypair_from_seed(secret)
    shares = split_secret(secret, threshold, len(custodians))
    organisation.recovery_public_key = public.raw
    organisation.recovery_threshold = threshold
    organisation.recovery_share_count = len(custodians)
    organisation.recovery_renewal_needed = False
    return public, [
        CustodianShare(name, share.encode()) for name, share in zip(custodians, shares, strict=True)
    ]


def recovery_private_key(organisation: Organisation, typed_shares: Sequence[str]) -> PrivateKey:
    """The recovery private key from k typed shares; CustodyError (naming the problem, never a share)."""
    if organisation.recovery_public_key is None:
        raise CustodyError("no_shares", f"organisation {organisation.slug} has no recovery shares")
    try:
        parsed = [parse_share(text) for text in typed_shares]
    except InvalidReceipt as exc:
        raise CustodyError("share_typo", str(exc)) from None
    try:
        secret = combine_shares(parsed)
    except ValueError as exc:
        raise CustodyError("shares", str(exc)) from None
    private, public = keypair_from_seed(secret)
    if public.raw != organisation.recovery_public_key:
        raise CustodyError(
            "shares_foreign",
            f"these shares do not belong to organisation {organisation.slug} (or one is wrong)",
        )
    return private


def open_epochs_with_recovery(
    session: Session, organisation: Organisation, recovery_key: PrivateKey
) -> dict[int, PrivateKey]:
    keys = {}
    for row in live_epochs(session, organisation.id):
        if row.recovery_wrapped_private_key is None:
            continue
        keys[row.epoch] = unwrap_private_key(
            row.recovery_wrapped_private_key, recovery_key, recovery_epoch_context(organisation.id, row.epoch)
        )
    return keys
