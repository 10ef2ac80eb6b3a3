"""JSON shapes of the staff session API (a contract: /openapi.json documents them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SessionCreate(BaseModel):
    """Sign in: e-mail, password, and the 6-digit code of the authenticator app (or a recovery code)."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    totp: str = Field(min_length=1, max_length=32, description="6-digit TOTP code, or a recovery code")


class MembershipRead(BaseModel):
    organisation_id: str
    organisation_slug: str
    organisation_name: str
    role: str = Field(description="counsellor or lead")


class StaffUserRead(BaseModel):
    id: str
    email: str
    display_name: str
    is_admin: bool
    is_coordinator: bool
    memberships: list[MembershipRead]


class SessionRead(BaseModel):
    csrf_token: str = Field(
        description="Send as header X-CSRF-Token with every state-changing call of this session"
    )
    user: StaffUserRead
    must_change_password: bool = Field(
        description="True after sign-in with an initial password: only POST /api/v1/session/password "
        "and DELETE /api/v1/session are open until it is changed"
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024, description="At least 12 characters, not common")
