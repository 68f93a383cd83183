"""Shapes at the teller desk's edge: its configuration, how a customer is identified, and a
supervisor's decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CardProof", "DecisionBody", "IdDocument", "Identification", "TellerConfig"]

_Strict = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class TellerConfig:
    """What the desk needs from the node's settings."""

    #: Currency -> the largest amount (minor units) a teller handles without a supervisor.
    authority: Mapping[str, int]
    #: The key card numbers are hashed and PINs verified with.
    data_key: bytes = field(repr=False)
    #: The bank's time zone: a card expires at the end of its month there.
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))


class IdDocument(BaseModel):
    """The identity document the customer shows: its type and number, as at onboarding."""

    model_config = _Strict

    type: str = Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    number: str = Field(min_length=4, max_length=64, pattern=r"^[0-9A-Za-z-]+$")


class CardProof(BaseModel):
    """The customer's card, and the PIN they keyed in on the desk's PIN pad."""

    model_config = _Strict

    card: str = Field(pattern=r"^[0-9]{12,19}$")
    pin: str = Field(pattern=r"^[0-9]{4,12}$", repr=False)


class Identification(BaseModel):
    """How the teller identified the customer present: a document, or card and PIN."""

    model_config = _Strict

    id_document: IdDocument | None = None
    card: str | None = Field(default=None, pattern=r"^[0-9]{12,19}$")
    pin: str | None = Field(default=None, pattern=r"^[0-9]{4,12}$", repr=False)

    @model_validator(mode="after")
    def _one_way(self) -> Identification:
        by_card = self.card is not None or self.pin is not None
        if (self.id_document is not None) == by_card:
            raise ValueError("give either id_document, or card and pin")
        if by_card and (self.card is None or self.pin is None):
            raise ValueError("a card needs its pin")
        return self

    def card_proof(self) -> CardProof | None:
        """Return the card and PIN, if that is how the customer was identified."""
        if self.card is None or self.pin is None:
            return None
        return CardProof(card=self.card, pin=self.pin)


class DecisionBody(BaseModel):
    """A supervisor's approval or rejection of what is over a teller's authority."""

    model_config = _Strict

    reason: str | None = Field(default=None, max_length=200)
