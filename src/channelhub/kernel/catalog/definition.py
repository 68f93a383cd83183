"""The shape of a service definition, as an operator writes it in YAML."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from channelhub.kernel.model import AuthLevel

__all__ = [
    "CHANNEL_KINDS",
    "AmountFields",
    "AuthRequirement",
    "BranchNode",
    "Category",
    "FlowNode",
    "ServiceDefinition",
    "ServiceStatus",
    "StepNode",
]

#: The kinds of channel a service can be released on; ``partner`` covers every ``partner:<app>``.
CHANNEL_KINDS = ("mobile", "web", "teller", "atm", "pos", "partner", "interbank")

_Strict = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Category(StrEnum):
    """The 11 business categories of DESIGN.md, plus ``system`` for technical services."""

    CUSTOMER = "customer"
    ACCOUNT = "account"
    TRANSFER = "transfer"
    BILL = "bill"
    CARD = "card"
    LOAN = "loan"
    WEALTH = "wealth"
    FX = "fx"
    CASH = "cash"
    SECURITY = "security"
    SERVICE = "service"
    SYSTEM = "system"


class ServiceStatus(StrEnum):
    """Where a definition is in its life: only ``published`` ones are invoked."""

    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


class StepUpRule(BaseModel):
    """When a customer must prove a fresh second factor bound to this very transaction."""

    model_config = _Strict

    #: Every call, whatever the amount.
    always: bool = False
    #: Currency -> decimal amount: a call for more than this needs a step-up.
    amount_over: dict[str, str] = Field(default_factory=dict)
    #: The input field naming the beneficiary, bound into the challenge with the amount.
    beneficiary: str | None = None


class AuthRequirement(BaseModel):
    """What a caller must have proved before any step runs."""

    model_config = _Strict

    level: AuthLevel = AuthLevel.PASSWORD
    scopes: tuple[str, ...] = ()
    step_up: StepUpRule | None = None


class AmountFields(BaseModel):
    """Which input fields carry the transaction's amount and currency, for the journal."""

    model_config = _Strict

    amount: str = "amount"
    currency: str = "currency"


class StepNode(BaseModel):
    """Run one registered step; ``compensation`` names the step that undoes it."""

    model_config = _Strict

    step: str = Field(min_length=1, max_length=128)
    id: str | None = Field(default=None, max_length=64)
    compensation: str | None = Field(default=None, max_length=128)
    when: str | None = Field(default=None, max_length=2000)
    params: dict[str, Any] = Field(default_factory=dict, alias="with")
    #: This step is the service's call to its back end (the built-in ledger by default): a
    #: node's ``[routes]`` may send it to an external back end instead (``StepRoute``).
    routable: bool = False

    @property
    def output_key(self) -> str:
        """Return the name under which the step's output is kept for later steps."""
        return self.id or self.step


class BranchSpec(BaseModel):
    """A condition and the steps to run when it holds (``then``) or not (``else``)."""

    model_config = _Strict

    condition: str = Field(alias="if", min_length=1, max_length=2000)
    then: tuple[FlowNode, ...] = ()
    otherwise: tuple[FlowNode, ...] = Field(default=(), alias="else")


class BranchNode(BaseModel):
    """A fork in the flow on a CEL condition."""

    model_config = _Strict

    branch: BranchSpec


def _node_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "branch" if "branch" in value else "step"
    if isinstance(value, BaseModel):
        return "branch" if isinstance(value, BranchNode) else "step"
    return None


FlowNode = Annotated[
    Annotated[StepNode, Tag("step")] | Annotated[BranchNode, Tag("branch")],
    Discriminator(_node_kind),
]
BranchSpec.model_rebuild()


class ServiceDefinition(BaseModel):
    """One business service, defined once and released on every channel it names."""

    model_config = _Strict

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=128)
    category: Category
    version: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    status: ServiceStatus = ServiceStatus.PUBLISHED
    auth: AuthRequirement = AuthRequirement()
    channels: tuple[Literal["mobile", "web", "teller", "atm", "pos", "partner", "interbank"], ...]
    idempotency: Literal["required", "optional"] = "optional"
    amount: AmountFields | None = None
    input: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    flow: tuple[FlowNode, ...] = Field(min_length=1)
