"""The transaction engine: canonical model, error codes, catalog, flows, journal, recovery.

The kernel knows no channel's wire format and no domain: channels hand it canonical requests,
domains hand it steps through the registry.
"""

from channelhub.kernel import (
    reversal,  # noqa: F401  (registers the txn.reverse step)
    system_steps,  # noqa: F401  (registers the system.* steps)
)
from channelhub.kernel.codes import CODES, ErrorCode, lookup
from channelhub.kernel.engine import EngineSettings, TransactionEngine
from channelhub.kernel.model import (
    ANONYMOUS,
    AuthLevel,
    Principal,
    PrincipalKind,
    TransactionRequest,
    TransactionResult,
    TxnStatus,
)
from channelhub.kernel.recovery import RecoveryReport, RecoveryWorker
from channelhub.kernel.steps import OutcomeUnknown, StepContext, StepRegistry, registry

__all__ = [
    "ANONYMOUS",
    "CODES",
    "AuthLevel",
    "EngineSettings",
    "ErrorCode",
    "OutcomeUnknown",
    "Principal",
    "PrincipalKind",
    "RecoveryReport",
    "RecoveryWorker",
    "StepContext",
    "StepRegistry",
    "TransactionEngine",
    "TransactionRequest",
    "TransactionResult",
    "TxnStatus",
    "lookup",
    "registry",
]
