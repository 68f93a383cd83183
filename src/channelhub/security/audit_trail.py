"""The audit trail in the database: appending records to the hash chain, and walking it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kit.clock import utc_now
from channelhub.kit.ids import new_id
from channelhub.security import repository
from channelhub.security.audit import GENESIS, record_hash

__all__ = ["record_audit", "verify_audit_chain"]


async def record_audit(
    session: AsyncSession,
    *,
    action: str,
    outcome: str,
    actor_kind: str,
    actor_id: str | None,
    channel: str | None = None,
    source_address: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Append one record to the tamper-evident audit chain, in ``session``'s transaction;
    return its sequence number. ``details`` must never hold a secret."""
    await repository.lock_audit_chain(session)
    last = await repository.last_audit(session)
    fields: dict[str, Any] = {
        "seq": 1 if last is None else last.seq + 1,
        "id": str(new_id()),
        "at": now or utc_now(),
        "action": action,
        "outcome": outcome,
        "actor_kind": actor_kind,
        "actor_id": actor_id,
        "channel": channel,
        "source_address": (source_address or "")[:64] or None,
        "details": dict(details or {}),
    }
    prev = GENESIS if last is None else last.hash
    row = {**fields, "id": uuid.UUID(fields["id"]), "prev_hash": prev}
    row["hash"] = record_hash(prev, fields)
    await repository.append_audit(session, row)
    return int(fields["seq"])


async def verify_audit_chain(
    session: AsyncSession, *, advance: Callable[[int], None] = lambda _: None
) -> tuple[int, list[str]]:
    """Walk the audit chain from its first record; return how many records were checked and
    each break found (a gap in the sequence, a record whose hash does not match its fields,
    or one that does not point at the hash before it)."""
    problems: list[str] = []
    prev_hash, expected_seq, count = GENESIS, 1, 0
    async for row in repository.audit_records(session):
        count += 1
        if row.seq != expected_seq:
            problems.append(f"record {row.seq}: expected record {expected_seq} (records missing)")
        if row.prev_hash != prev_hash:
            problems.append(f"record {row.seq}: does not follow the record before it")
        fields = {
            "seq": row.seq,
            "id": str(row.id),
            "at": row.at,
            "action": row.action,
            "outcome": row.outcome,
            "actor_kind": row.actor_kind,
            "actor_id": row.actor_id,
            "channel": row.channel,
            "source_address": row.source_address,
            "details": row.details,
        }
        if record_hash(row.prev_hash, fields) != row.hash:
            problems.append(f"record {row.seq}: altered (its hash does not match its content)")
        prev_hash, expected_seq = row.hash, row.seq + 1
        if count % 1000 == 0:
            advance(1000)
    advance(count % 1000)
    return count, problems
