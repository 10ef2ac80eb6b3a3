"""The JSON shapes of the organisations API (leads manage their members)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from service.identity.models import MembershipRole


class MemberGrant(BaseModel):
    """Grant the organisation key to an account that has set a password of its own."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, StringConstraints(min_length=3, max_length=254)]
    role: MembershipRole = MembershipRole.counsellor


class MemberRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str
    display_name: str
    email: str
    role: MembershipRole
    # Whether the member holds the organisation's current key (False: named before the key existed).
    holds_keys: bool
