"""The shapes at the risk engine's edge: rule and list changes asked by staff, review
decisions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ListChangeBody", "ReviewDecisionBody", "RuleBody", "RuleModeBody"]

_Body = ConfigDict(extra="forbid", frozen=True)
Outcome = Literal["allow", "challenge", "review", "deny"]


class RuleBody(BaseModel):
    """``POST /staff/v1/risk/rules``: a new rule, or a new version of one."""

    model_config = _Body

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str = Field(default="", max_length=500)
    expression: str = Field(min_length=1, max_length=4000)
    outcome: Outcome
    score: int = Field(default=0, ge=0, le=1000)
    #: What the rule counts as when it fails at run time; the node's setting if unset.
    on_error: Outcome | None = None
    #: A new version starts in shadow (recorded, not enforced) unless asked otherwise.
    mode: Literal["active", "shadow"] = "shadow"


class RuleModeBody(BaseModel):
    """``POST /staff/v1/risk/rules/{name}/{version}/mode``: switch a version on or off."""

    model_config = _Body

    mode: Literal["active", "shadow", "retired"]


class ListChangeBody(BaseModel):
    """``POST /staff/v1/risk/lists``: add to or remove from a list (four-eyes)."""

    model_config = _Body

    action: Literal["add", "remove"] = "add"
    list: Literal["deny", "watch"]
    kind: Literal["account", "device", "address", "beneficiary_name"]
    value: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=200)


class ReviewDecisionBody(BaseModel):
    """``POST /staff/v1/risk/reviews/{id}/approve`` or ``/reject``."""

    model_config = _Body

    reason: str | None = Field(default=None, max_length=200)
