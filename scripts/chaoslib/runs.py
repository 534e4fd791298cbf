"""One seeded chaos run: a scenario, a random engine configuration, maybe a Ctrl-C, the run
itself and, if it failed, the heal run without faults. Every path is checked after every run."""

from __future__ import annotations

import dataclasses
import random
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import anyio

from pullman import config
from pullman.errors import PullmanError
from pullman.session import PlanReport, Session
from pullman.testing import Simulator

from chaoslib.checks import check_journals
from chaoslib.common import environ
from chaoslib.scenarios import Scenario, build_hf, build_ollama, build_url
from chaoslib.settings import fast_transfer_config

__all__ = ["RUN_TIMEOUT", "run_seed"]

RUN_TIMEOUT = 45.0

Result = dict[str, Any]
"""A run's record (JSON: the soak's workers send it to the parent)."""
Outcome = list[PlanReport] | Exception | None
"""What one session's ``get`` returned or raised (None: cancelled before it finished)."""


def _session_stats(session: Session) -> dict[str, int]:
    stats = session.statistics()
    return {
        "recycles": sum(s.recycles for s in stats),
        "retries": sum(s.retries for s in stats),
        "refreshes": sum(s.refreshes for s in stats),
    }


def _attempt(
    scenario: Scenario, settings: config.Settings, timeout: float, *, twins: int = 1
) -> Result:
    """Run the scenario once (``twins`` sessions at once, like two terminals); classify it."""
    sessions = [Session(settings) for _ in range(twins)]
    outcomes: list[Outcome] = [None] * twins
    out: Result = {}
    started = time.monotonic()

    async def one(i: int) -> None:
        try:
            outcomes[i] = await sessions[i].get([scenario.ref], scenario.options)
        except Exception as exc:
            outcomes[i] = exc

    async def main() -> None:
        with anyio.fail_after(timeout):
            async with anyio.create_task_group() as tg:
                for i in range(twins):
                    tg.start_soon(one, i)

    try:
        anyio.run(main)
    except TimeoutError:
        out["outcome"] = "timeout"
    else:
        out.update(_classify(outcomes, scenario))
    out["elapsed"] = round(time.monotonic() - started, 3)
    for session in sessions:
        for key, value in _session_stats(session).items():
            out[key] = out.get(key, 0) + value
    return out


def _classify(outcomes: list[Outcome], scenario: Scenario) -> Result:
    """``crash`` (not one of our errors), ``clean`` (one of them) or ``ok``, with details."""
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    crashes = [e for e in errors if not isinstance(e, PullmanError)]
    if crashes:
        return {
            "outcome": "crash",
            "error": type(crashes[0]).__name__,
            "message": "".join(traceback.format_exception(crashes[0]))[-3000:],
        }
    if errors:
        exc = errors[0]
        assert isinstance(exc, PullmanError)
        return {
            "outcome": "clean",
            "error": type(exc).__name__,
            "exit_code": exc.exit_code,
            "message": exc.explain(),
        }
    reports = [r for o in outcomes if isinstance(o, list) for r in o]
    out: Result = {"outcome": "ok"}
    files = [f for r in reports for f in r.files if f.outcome is not None]
    out["resumed"] = sum(f.outcome.resumed for f in files if f.outcome is not None)
    out["discarded"] = sum(f.outcome.discarded for f in files if f.outcome is not None)
    unverified = [str(f.path) for r in reports for f in r.files if not f.verified]
    if unverified and scenario.kind != "url":
        out["problems"] = [f"reported unverified: {unverified}"]
    return out


@dataclasses.dataclass
class _Run:
    """A prepared run: its scenario, its settings and how many sessions share the store."""

    scenario: Scenario
    settings: config.Settings
    flips: dict[str, set[int]]
    """Staging key -> offsets a FlipByte fault may have corrupted (see :func:`check_journals`)."""
    sessions: int

    def attempt(self, timeout: float) -> Result:
        """One attempt, then every check of what it left behind."""
        scenario = self.scenario
        out = _attempt(scenario, self.settings, timeout, twins=self.sessions)
        out["problems"] = out.get("problems", []) + scenario.check()
        if scenario.staging is not None:
            claimed, bad = check_journals(scenario.staging, scenario.keys, self.flips)
            out["journal_claimed"] = claimed
            out["problems"] += bad
        return out


def run_seed(seed: int, base: Path, *, timeout: float = RUN_TIMEOUT, twins: bool = True) -> Result:
    """One chaos run, and its heal run if it failed. Pure function of ``seed``."""
    rng = random.Random(seed)
    kind = rng.choices(["url", "ollama", "hf"], [4, 3, 3])[0]
    work = base / f"seed-{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result: Result = {"seed": seed, "kind": kind}
    sim = Simulator().start()
    try:
        run, interrupt = _prepare(rng, kind, sim, work, seed, result, twins_allowed=twins)
        _play(run, sim, interrupt, timeout, result)
    except Exception as exc:
        result["harness_error"] = "".join(traceback.format_exception(exc))[-3000:]
    finally:
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


def _scenario(kind: str, rng: random.Random, sim: Simulator, work: Path, seed: int) -> Scenario:
    if kind == "url":
        return build_url(rng, sim, work)
    if kind == "ollama":
        return build_ollama(rng, sim, work, seed)
    return build_hf(rng, sim, work, seed)


def _prepare(
    rng: random.Random,
    kind: str,
    sim: Simulator,
    work: Path,
    seed: int,
    result: Result,
    *,
    twins_allowed: bool,
) -> tuple[_Run, float | None]:
    """Draw the scenario, the settings, the Ctrl-C moment and the twins (in this order: a
    seed replays its run); note them in ``result``."""
    scenario = _scenario(kind, rng, sim, work, seed)
    result["detail"] = scenario.detail
    scenario.sim = sim
    flips = scenario.flips()  # before the heal clears the faults
    result["size"] = scenario.size
    settings = config.Settings(
        paths=config.Paths(data=work / "home", config_file=work / "pullman.toml"),
        transfer=fast_transfer_config(rng),
    )
    result["connections"] = settings.transfer.connections
    interrupt = round(rng.uniform(0.05, 1.5), 2) if rng.random() < 0.25 else None
    result["interrupt_at"] = interrupt
    # Two sessions at once on the same store, like two terminals (``twins=False``: never).
    both = kind != "url" and rng.random() < 0.2
    n_sessions = 2 if both and twins_allowed else 1
    result["twins"] = n_sessions
    return _Run(scenario, settings, flips, n_sessions), interrupt


def _play(
    run: _Run, sim: Simulator, interrupt: float | None, timeout: float, result: Result
) -> None:
    """The attempts: maybe a Ctrl-C'd one, the first, and the heal if the first failed."""
    with environ(**run.scenario.env):
        if interrupt is not None:
            # Like Ctrl-C: cancelled at a random moment, then run again with the faults.
            stopped = run.attempt(interrupt)
            if stopped["outcome"] == "timeout":
                stopped["outcome"] = "interrupted"
            result["interrupted"] = stopped
        first = run.attempt(timeout)
        first["faults_used"] = sum(f.used for sf in sim.files.values() for f in sf.faults)
        result["first"] = first
        if first["outcome"] != "ok":
            for sf in sim.files.values():
                sf.faults = []
                sf.throttle = None
            run.scenario.heal()
            result["heal"] = run.attempt(timeout)
    result["bytes_sent"] = sim.total_bytes_sent()
    result["token_to_cdn"] = sim.cdn.saw_header("authorization")
