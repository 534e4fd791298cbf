"""The local registry / CDN simulator, shipped for users' and our own tests.

Real sockets on loopback, scripted faults, per-connection throttling. See :class:`Simulator`.
"""

from pullman.testing.faults import (
    ClientCap,
    Drip,
    Fault,
    FlipByte,
    IgnoreRange,
    Reset,
    Short,
    Stall,
    Status,
    Throttle,
    WrongContentRange,
)
from pullman.testing.files import SimFile, Sparse, make_data
from pullman.testing.simulator import Simulator

__all__ = [
    "ClientCap",
    "Drip",
    "Fault",
    "FlipByte",
    "IgnoreRange",
    "Reset",
    "Short",
    "SimFile",
    "Simulator",
    "Sparse",
    "Stall",
    "Status",
    "Throttle",
    "WrongContentRange",
    "make_data",
]
