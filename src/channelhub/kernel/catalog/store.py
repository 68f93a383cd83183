"""The catalog in memory: every compiled service, found by id in constant time."""

from __future__ import annotations

from collections.abc import Iterable

from channelhub.kernel.catalog.compiled import CompiledService
from channelhub.kernel.catalog.definition import ServiceStatus
from channelhub.kernel.errors import ServiceNotOnChannel, UnknownService

__all__ = ["Catalog", "channel_kind"]


def channel_kind(channel: str) -> str:
    """Return the kind of ``channel``: ``partner:acme`` is a ``partner`` channel."""
    return channel.split(":", 1)[0]


class Catalog:
    """All service definitions; ``resolve`` is what a request pays, and it is two dict look-ups."""

    def __init__(self, services: Iterable[CompiledService]) -> None:
        self._versions: dict[str, dict[int, CompiledService]] = {}
        for service in services:
            self._versions.setdefault(service.id, {})[service.version] = service
        # The version a request without an explicit version gets: the newest published one.
        self._current: dict[str, CompiledService] = {}
        for service_id, versions in self._versions.items():
            published = [
                s for s in versions.values() if s.definition.status is ServiceStatus.PUBLISHED
            ]
            if published:
                self._current[service_id] = max(published, key=lambda s: s.version)

    def __len__(self) -> int:
        return sum(len(v) for v in self._versions.values())

    def resolve(
        self, service_id: str, *, channel: str, version: int | None = None
    ) -> CompiledService:
        """Return the published service a request on ``channel`` invokes.

        Raises:
            UnknownService: no published definition with this id (and version).
            ServiceNotOnChannel: the service is not released on the channel.
        """
        if version is None:
            service = self._current.get(service_id)
        else:
            service = self._versions.get(service_id, {}).get(version)
            if service is not None and service.definition.status is not ServiceStatus.PUBLISHED:
                service = None
        if service is None:
            raise UnknownService(
                f"no published service {service_id[:128]!r}", details={"service": service_id[:128]}
            )
        if channel_kind(channel) not in service.definition.channels:
            raise ServiceNotOnChannel(
                f"{service_id} is not available on the {channel} channel",
                details={"service": service_id, "channel": channel},
            )
        return service

    def get(self, service_id: str, version: int) -> CompiledService | None:
        """Return one exact version, whatever its status (recovery may need a retired one)."""
        return self._versions.get(service_id, {}).get(version)

    def all(self) -> list[CompiledService]:
        """Return every definition, sorted by id and version."""
        return sorted(
            (s for v in self._versions.values() for s in v.values()),
            key=lambda s: (s.id, s.version),
        )

    def published(self) -> list[CompiledService]:
        """Return the current published version of every service, sorted by id."""
        return sorted(self._current.values(), key=lambda s: s.id)
