"""The reporter's optional notification address: sealed with the service's notification key.

Not with the case key: the worker that sends "there is a new message for you" holds no case key, and must
not. A thief of the database alone reads nothing; the address is used for nothing but that one sentence.
"""

from __future__ import annotations

from service.crypto import Context, DecryptionError, open_sealed, seal


def _context(case_id: str) -> Context:
    return Context("notify_contact", case_id=case_id)


def seal_address(notification_key: bytes, case_id: str, address: str) -> bytes:
    return seal(notification_key, address.encode(), _context(case_id))


def open_address(
    notification_key: bytes, case_id: str, sealed: bytes, previous: tuple[bytes, ...] = ()
) -> str:
    """The address; during a rotation of the notification key also one still sealed under the previous key
    (`rueckhalt secrets rotate notification_key --finish` re-seals them all)."""
    for key in previous:
        try:
            return open_sealed(notification_key, sealed, _context(case_id)).decode()
        except DecryptionError:
            notification_key = key
    return open_sealed(notification_key, sealed, _context(case_id)).decode()
