"""Job-state races, made deterministic: another process changes a job at the worst moment.

The scheduler reads the queue, then moves a job to ``running``. A ``cancel`` or ``pause`` from
another process can land in between; it used to raise out of ``Scheduler.run`` (killing the
daemon) or be silently undone. Here an index subclass plays the other process: right after the
scheduler's read it changes the job through a second SQLite connection to the same file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from pullman import config
from pullman.core.jobs import GetOptions, JobOptions, JobState
from pullman.errors import JobConflict, Unreachable
from pullman.index import Index
from pullman.jobqueue import take_job
from pullman.jobrecord import JobRecorder
from pullman.scheduler import Scheduler
from pullman.testing import Simulator, make_data

from helpers import KiB, fast_env


class RacingIndex(Index):
    """An index whose first queue read is followed, at once, by another process's move."""

    race: tuple[int, JobState] | None = None

    def next_jobs(self, limit: int) -> list:  # type: ignore[type-arg]
        jobs = super().next_jobs(limit)
        if self.race is not None:
            job_id, state = self.race
            self.race = None
            with Index.open(self.path) as other:  # its own connection: another process
                other.set_state(job_id, state, wait_reason="by the user")
        return jobs


def queued_job(tmp_path: Path, sim: Simulator) -> tuple[RacingIndex, int, Path]:
    sim.add_file("m.bin", make_data(256 * KiB, 3))
    dest = tmp_path / "out" / "m.bin"
    index = RacingIndex.open(tmp_path / "home" / "index.db")
    job = JobOptions(GetOptions(out=str(dest)))
    return index, index.add_job(sim.url("m.bin"), job.to_json()), dest


def run_scheduler(index: Index, tmp_path: Path, only: list[int]) -> None:
    settings = config.load(env={"PULLMAN_HOME": str(tmp_path / "home"), **fast_env()})
    scheduler = Scheduler(settings, index)

    async def main() -> None:
        with anyio.fail_after(30):
            await scheduler.run(only=only)

    anyio.run(main)


@pytest.mark.parametrize("state", ["cancelled", "paused"])
def test_a_cancel_or_pause_between_reading_the_queue_and_starting_wins(
    sim: Simulator, tmp_path: Path, state: JobState
) -> None:
    index, job_id, dest = queued_job(tmp_path, sim)
    index.race = (job_id, state)
    run_scheduler(index, tmp_path, [job_id])  # neither raises nor undoes the other's move
    job = index.job(job_id)
    assert index.race is None  # the race did happen
    assert job is not None and job.state == state
    assert job.started_at is None  # it never ran
    assert not dest.exists()
    assert sim.files["m.bin"].bytes_sent == 0


def test_without_a_race_the_same_job_runs(sim: Simulator, tmp_path: Path) -> None:
    index, job_id, dest = queued_job(tmp_path, sim)
    run_scheduler(index, tmp_path, [job_id])
    job = index.job(job_id)
    assert job is not None and job.state == "done"
    assert dest.read_bytes() == make_data(256 * KiB, 3)


def test_moves_are_compare_and_set(tmp_path: Path) -> None:
    with Index.open(tmp_path / "index.db") as index:
        job_id = index.add_job("https://h/x")
        index.set_state(job_id, "cancelled")
        with pytest.raises(JobConflict) as info:
            index.set_state(job_id, "running", only_from=["queued", "waiting"])
        assert info.value.current == "cancelled" and info.value.wanted == "running"
        paused = index.add_job("https://h/y")
        index.set_state(paused, "paused")
        with pytest.raises(JobConflict):  # paused -> running is allowed, but not asked for
            index.set_state(paused, "running", only_from=["queued", "waiting"])
        job = index.job(paused)
        assert job is not None and job.state == "paused"


def test_a_job_cancelled_as_it_finished_stays_cancelled(tmp_path: Path) -> None:
    with Index.open(tmp_path / "index.db") as index:
        job_id = index.add_job("https://h/x")
        running = index.set_state(job_id, "running")
        index.set_state(job_id, "cancelled")  # another process, while it was finishing
        JobRecorder(index).ended(running, "done", None, None, [])  # does not raise
        job = index.job(job_id)
        assert job is not None and job.state == "cancelled"


@pytest.mark.parametrize("ending", ["waiting", "queued", "failed"])
def test_a_pause_as_the_job_stopped_is_not_undone(tmp_path: Path, ending: str) -> None:
    """The job waits for the network, or the daemon stops, or it fails, a moment after the
    user paused it: the pause stands (it used to become ``waiting`` or ``queued`` and resume)."""
    with Index.open(tmp_path / "index.db") as index:
        job_id = index.add_job("https://h/x")
        running = index.set_state(job_id, "running")
        index.set_state(job_id, "paused", wait_reason="by the user")  # another process
        lost = Unreachable("could not resolve host h", url="https://h/x")
        error = lost if ending == "failed" else None
        JobRecorder(index).ended(running, ending, "network", error, [])
        job = index.job(job_id)
        assert job is not None and job.state == "paused"


class TwoRerunsIndex(Index):
    """Two reruns of one command read the queue at once; the other one claims the job first."""

    other: JobOptions | None = None
    taken: int | None = None

    def jobs(self, states=None):  # type: ignore[no-untyped-def]
        found = super().jobs(states)
        if self.other is not None:
            other, self.other = self.other, None
            with Index.open(self.path) as theirs:
                self.taken = take_job(theirs, "https://h/x", other, 0)
        return found


def test_two_reruns_never_take_over_the_same_job(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # the first run's process, long gone; its job still says queued
    first = JobOptions(GetOptions(out="/tmp/x"), foreground=dead.pid)
    with TwoRerunsIndex.open(tmp_path / "index.db") as index:
        old = index.add_job("https://h/x", first.to_json())
        index.other = replace(first, foreground=os.getppid())  # another live terminal
        mine = take_job(index, "https://h/x", replace(first, foreground=os.getpid()), 0)
        assert index.taken == old  # the other rerun got the old job ...
        assert mine != old  # ... and this one did not run it too
