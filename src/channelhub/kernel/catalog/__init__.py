"""The service catalog: definitions in YAML, checked, compiled, and looked up per request."""

from channelhub.kernel.catalog.compiled import CompiledBranch, CompiledService, CompiledStep
from channelhub.kernel.catalog.definition import CHANNEL_KINDS, Category, ServiceDefinition
from channelhub.kernel.catalog.loader import (
    BUILTIN_CATALOG,
    CatalogError,
    Problem,
    StepRoute,
    definition_files,
    load_definitions,
)
from channelhub.kernel.catalog.store import Catalog, channel_kind

__all__ = [
    "BUILTIN_CATALOG",
    "CHANNEL_KINDS",
    "Catalog",
    "CatalogError",
    "Category",
    "CompiledBranch",
    "CompiledService",
    "CompiledStep",
    "Problem",
    "ServiceDefinition",
    "StepRoute",
    "channel_kind",
    "definition_files",
    "load_definitions",
]
