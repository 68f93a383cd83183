"""The Python heap of a long-running node."""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> int:
    """Collect once, then keep every object alive now out of the cyclic collector's sight;
    return how many objects that was.

    A node's startup leaves hundreds of thousands of objects that live as long as the process
    (the catalog, compiled rules, SQLAlchemy's metadata, imported modules). Every full pass
    of the collector walks all of them while every transfer in flight waits (in bench/risk.py's
    process, which holds its load generator's customers too, ~0.1 s a pass, every few seconds
    under load). Objects created after this are collected as usual. Call it once, when the node
    is ready to serve: reference counting still frees a frozen object nothing refers to, but a
    cycle among them that becomes garbage later is never collected.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
