"""Random fault mixes, file sizes and throttles: what a seeded run serves, and how badly."""

from __future__ import annotations

import dataclasses
import random
from typing import TypedDict

from pullman.testing import (
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

from chaoslib.common import KiB, MiB

__all__ = ["FAULT_KINDS", "describe_fault", "make_faults", "random_size", "random_throttle"]


class Trigger(TypedDict, total=False):
    """Which requests a fault strikes (see :class:`pullman.testing.Fault`)."""

    times: int
    on: tuple[int, ...]
    chance: float
    seed: int


FAULT_KINDS = (
    # (name, weight, works on files the Hub serves itself (small git files))
    ("reset", 14, True),
    ("short", 10, True),
    ("stall", 8, True),
    ("drip", 6, True),
    ("5xx", 12, True),
    ("429", 8, True),
    ("404", 2, True),
    ("ignore_range", 8, False),
    ("wrong_range", 8, False),
    ("flip", 10, False),
)


def _trigger(rng: random.Random) -> Trigger:
    roll = rng.random()
    if roll < 0.55:
        return {"times": rng.randint(1, 4)}
    if roll < 0.80:
        return {"on": tuple(sorted(rng.sample(range(1, 16), rng.randint(1, 3))))}
    return {"chance": round(rng.uniform(0.05, 0.35), 3), "seed": rng.randrange(1 << 30)}


def _after(rng: random.Random, size: int) -> int:
    roll = rng.random()
    if roll < 0.25:
        return 0
    if roll < 0.5:
        return rng.randint(1, 4096)
    return rng.randint(0, max(0, size))


def make_faults(
    rng: random.Random, size: int, *, served_by_hub: bool = False, digest: bool = True
) -> list[Fault]:
    """0-4 faults for one file, each with a random trigger (times / on / chance)."""
    kinds = [
        (name, weight)
        for name, weight, on_hub in FAULT_KINDS
        if (on_hub or not served_by_hub) and (name != "flip" or (digest and size > 0))
    ]
    faults: list[Fault] = []
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        name = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        trig = _trigger(rng)
        # A few runs get a fault on every request: they must end in a clean error (not a hang).
        fatal = rng.random() < 0.04 and name in ("5xx", "wrong_range", "flip", "reset")
        if fatal:
            trig = {"times": -1}
        fault = _fault(rng, name, trig, size, fatal=fatal)
        if fault is not None:
            faults.append(fault)
    return faults


def _fault(rng: random.Random, name: str, trig: Trigger, size: int, *, fatal: bool) -> Fault | None:
    """One fault of kind ``name`` striking ``trig``, its parameters drawn from ``rng``."""
    if name == "reset":
        return Reset(after=0 if fatal else _after(rng, size), **trig)
    if name == "short":
        return Short(after=_after(rng, size), **trig)
    if name == "stall":
        return Stall(after=_after(rng, size), seconds=rng.uniform(0.3, 2.5), **trig)
    if name == "drip":
        return Drip(after=_after(rng, size), rate=rng.randint(1, 256), **trig)
    if name == "5xx":
        return Status(code=rng.choice([500, 502, 503]), **trig)
    if name == "429":
        return Status(code=429, retry_after=rng.choice([None, 0, 1, 2, 3]), **trig)
    if name == "404":
        trig = {"times": 1} if "times" in trig and trig["times"] < 0 else trig
        return Status(code=404, **trig)
    if name == "ignore_range":
        return IgnoreRange(**trig)
    if name == "wrong_range":
        return WrongContentRange(shift=rng.choice([1, 4096, 65536]), **trig)
    if name == "flip":
        return FlipByte(offset=rng.randrange(size), **trig)
    return None


def describe_fault(f: Fault) -> str:
    kind = type(f).__name__
    fields = {
        k: v
        for k, v in dataclasses.asdict(f).items()
        if k not in ("used", "_rng") and v not in ((), 0.0, None) and not (k == "seed" and v == 0)
    }
    return kind + "(" + ",".join(f"{k}={v}" for k, v in fields.items()) + ")"


def random_size(rng: random.Random, big: int = 3 * MiB) -> int:
    roll = rng.random()
    if roll < 0.06:
        return rng.choice([0, 1, 2])
    if roll < 0.14:
        return rng.choice([1023, 1024, 65535, 65536, 65537, 131072])
    if roll < 0.35:
        return rng.randint(3, 256 * KiB)
    return rng.randint(256 * KiB, big)


def random_throttle(rng: random.Random) -> Throttle | None:
    if rng.random() >= 0.3:
        return None
    return Throttle(
        burst=rng.choice([0, 64 * KiB, 256 * KiB, MiB]),
        rate=rng.randint(512 * KiB, 4 * MiB),
        per=rng.choice(["connection", "request"]),
    )
