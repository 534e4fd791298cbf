"""The scheduler in-process against the simulator, with an injected, accelerated wall clock.

One real second is a minute of the scheduler's time, so windows that open or close "in ten
seconds" do so in a fraction of a real second; the order of events is what is asserted.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import anyio
import pytest

from pullman import config
from pullman.core.jobs import JobOptions
from pullman.index import Index
from pullman.scheduler import Scheduler
from pullman.testing import Simulator, Throttle, make_data
from pullman.testing.registry import OllamaRegistry

from helpers import FastClock, KiB, MiB

SPEEDUP = 60.0


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PULLMAN_HOME": str(tmp_path / "home"),
        "PULLMAN_TRANSFER_CONNECTIONS": "4",
        "PULLMAN_TRANSFER_MIN_PIECE": "64KiB",
        "PULLMAN_TRANSFER_PIECE_SIZE": "256KiB",
        "PULLMAN_TRANSFER_SPACE_MARGIN": "0",
        "PULLMAN_TRANSFER_JOURNAL_INTERVAL": "0.2",
        "PULLMAN_TRANSFER_RETRY_INITIAL": "0.01",
    }


def options(models: Path, **kw: object) -> dict[str, object]:
    from pullman.core.jobs import GetOptions

    return JobOptions(GetOptions(insecure=True, ollama_dir=str(models)), **kw).to_json()  # type: ignore[arg-type]


def run(scheduler: Scheduler, **kw: object) -> None:
    async def main() -> None:
        with anyio.fail_after(60):
            await scheduler.run(**kw)  # type: ignore[arg-type]

    anyio.run(main)


def test_a_job_outside_its_window_waits_then_runs_when_it_opens(
    sim: Simulator, tmp_path: Path, env: dict[str, str]
) -> None:
    registry = OllamaRegistry(sim)
    registry.add_model("library/tiny", layers=[("model", make_data(MiB, 1))])
    settings = config.load(env=env)
    index = Index.open(settings.paths.index)
    models = tmp_path / "models"
    job = index.add_job(registry.name("library/tiny"), options(models, window="01:00-02:00"))
    clock = FastClock(datetime(2026, 11, 22, 0, 59, 30))  # the window opens 30 s (0.5 s real) on
    scheduler = Scheduler(settings, index, clock=clock)
    run(scheduler, only=[job])
    kinds = [e.kind for e in index.events(job)]
    assert kinds[:3] == ["waiting", "started", "done"][: len(kinds[:3])]
    assert kinds[0] == "waiting" and "done" in kinds
    waiting = index.events(job)[0].detail
    assert "outside its window 01:00-02:00" in waiting and "01:00" in waiting
    assert index.job(job).state == "done"  # type: ignore[union-attr]
    assert clock.now() >= datetime(2026, 11, 22, 1, 0)


def test_a_window_closing_stops_a_running_job_and_keeps_its_progress(
    sim: Simulator, tmp_path: Path, env: dict[str, str]
) -> None:
    registry = OllamaRegistry(sim)
    data = make_data(4 * MiB, 2)
    registry.add_model("library/slow", layers=[("model", data)], throttle=Throttle(rate=256 * KiB))
    settings = config.load(env=env)
    index = Index.open(settings.paths.index)
    models = tmp_path / "models"
    job = index.add_job(registry.name("library/slow"), options(models, window="01:00-01:01"))
    clock = FastClock(datetime(2026, 11, 22, 1, 0, 0))  # closes 60 s (1 s real) later
    scheduler = Scheduler(settings, index, clock=clock)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: scheduler.run(only=[job]))
            with anyio.fail_after(30):
                while (j := index.job(job)) is None or j.state != "waiting" or not j.bytes_done:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

    anyio.run(main)
    row = index.job(job)
    assert row is not None and row.state == "waiting"
    assert "starts at 01:00" in (row.wait_reason or "")
    assert 0 < row.bytes_done < len(data)
    assert [e.kind for e in index.events(job)][:2] == ["started", "waiting"]
    assert list((models / ".pullman-partial").glob("*.journal"))  # the progress is on disk


def test_jobs_share_the_budget_and_run_by_priority(
    sim: Simulator, tmp_path: Path, env: dict[str, str]
) -> None:
    registry = OllamaRegistry(sim)
    for i in range(3):
        registry.add_model(
            f"library/m{i}",
            layers=[("model", make_data(MiB, 10 + i))],
            throttle=Throttle(rate=2 * MiB),
        )
    env = {**env, "PULLMAN_SCHEDULE_CONNECTIONS": "3", "PULLMAN_SCHEDULE_JOBS": "2"}
    settings = config.load(env=env)
    index = Index.open(settings.paths.index)
    models = tmp_path / "models"
    low = index.add_job(registry.name("library/m0"), options(models), priority=0)
    high = index.add_job(registry.name("library/m1"), options(models), priority=5)
    mid = index.add_job(registry.name("library/m2"), options(models), priority=1)
    scheduler = Scheduler(settings, index)
    peak_jobs = peak_conns = 0

    async def main() -> None:
        nonlocal peak_jobs, peak_conns
        async with anyio.create_task_group() as tg:

            async def sample() -> None:
                nonlocal peak_jobs, peak_conns
                while True:
                    peak_jobs = max(peak_jobs, len(scheduler.running_jobs()))
                    peak_conns = max(peak_conns, scheduler.budget.in_use())
                    await anyio.sleep(0.005)

            tg.start_soon(sample)
            with anyio.fail_after(60):
                await scheduler.run(only=[low, high, mid])
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert all(index.job(j).state == "done" for j in (low, high, mid))  # type: ignore[union-attr]
    assert 1 <= peak_jobs <= 2 and 1 <= peak_conns <= 3
    started = {j: index.events(j)[0].at for j in (low, high, mid)}
    assert started[high] <= started[mid] <= started[low]


def test_until_pauses_running_jobs_with_the_reason(
    sim: Simulator, tmp_path: Path, env: dict[str, str]
) -> None:
    registry = OllamaRegistry(sim)
    registry.add_model("library/slow", layers=[("model", make_data(4 * MiB, 3))],
                       throttle=Throttle(rate=256 * KiB))  # fmt: skip
    settings = config.load(env=env)
    index = Index.open(settings.paths.index)
    job = index.add_job(registry.name("library/slow"), options(tmp_path / "models"))
    clock = FastClock(datetime(2026, 11, 22, 6, 59, 0))
    scheduler = Scheduler(settings, index, clock=clock, on_stop=("paused", "interrupted"))
    run(scheduler, only=[job], until=datetime(2026, 11, 22, 7, 0))
    row = index.job(job)
    assert row is not None and row.state == "paused"
    assert row.wait_reason == "stopped at --until 07:00"
    assert 0 < row.bytes_done < 4 * MiB
