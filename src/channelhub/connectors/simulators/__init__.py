"""Simulators of the bank's external systems, for the demo, tests and benchmarks
(docs/connectors.md): each can be told to be slow, drop a reply, answer garbage or go down.
"""

from channelhub.connectors.simulators.clearing import ClearingFaults, ClearingSimulator
from channelhub.connectors.simulators.core import CoreSimulator, Faults
from channelhub.connectors.simulators.switch import SwitchFaults, SwitchSimulator

__all__ = [
    "ClearingFaults",
    "ClearingSimulator",
    "CoreSimulator",
    "Faults",
    "SwitchFaults",
    "SwitchSimulator",
]
