"""Shapes of the repeat-perpetrator matching that the intake and the counsellors' pages share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from service.cases.identifiers import TypedIdentifier
from service.matching.normalise import (
    MAX_VALUE_CHARS,
    PLATFORMS,
    Identifier,
    Kind,
    NotAnIdentifier,
    normalise,
)
from service.validation import Code, no_control_characters


class PerpetratorIdentifier(BaseModel):
    """One identifier of the perpetrator for the repeat-perpetrator matching (docs/matching.md): stored as a
    keyed token, and as typed sealed in the case."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Kind = Field(description="name, handle, phone, email or plate")
    value: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VALUE_CHARS)] = Field(
        description="As the reporter knows it: a handle with or without @, a phone number with or without "
        "country code (German without), a plate with or without spaces"
    )
    platform: Code | None = Field(default=None, description=f"For a handle only: {', '.join(PLATFORMS)}")

    def typed(self) -> TypedIdentifier:
        """As it is sealed with the case and shown: its JSON form."""
        return TypedIdentifier(kind=str(self.kind), value=self.value, platform=self.platform)

    @field_validator("value", mode="after")
    @classmethod
    def _value_is_clean(cls, value: str) -> str:
        no_control_characters(value)
        return value

    @model_validator(mode="after")
    def _normalisable(self) -> PerpetratorIdentifier:
        try:
            self.normalised()
        except NotAnIdentifier:
            raise PydanticCustomError(
                "invalid_identifier", "not a valid {kind}", {"kind": self.kind.value}
            ) from None
        return self

    def normalised(self) -> Identifier:
        return normalise(self.kind, self.value, self.platform)
