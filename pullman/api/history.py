"""Throughput over a job's life, for the dashboard's chart: bounded, however long the job runs.

A :class:`Series` keeps at most ``points`` samples. When it is full, every other sample goes and
the spacing between samples doubles, so a job of ten minutes and one of ten hours both have a
whole-life chart of a few hundred points. :class:`History` keeps the series of the most recent
:data:`JOBS` jobs. Samples are taken from the progress rows the scheduler writes (about one a
second); the history lives in the daemon's memory and starts when the daemon does.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, NamedTuple

POINTS: Final = 600
JOBS: Final = 64


class Sample(NamedTuple):
    t: float
    """Unix time."""
    rate: float
    """Bytes per second."""
    done: int


class Series:
    def __init__(self, points: int = POINTS) -> None:
        self.points = max(2, points)
        self.step = 0.0
        """The least spacing between kept samples (grows as the series is thinned)."""
        self.samples: list[Sample] = []

    def add(self, sample: Sample) -> None:
        if self.samples and sample.t - self.samples[-1].t < self.step:
            return
        self.samples.append(sample)
        if len(self.samples) > self.points:
            first, last = self.samples[0].t, self.samples[-1].t
            self.samples = self.samples[::2]
            if self.samples[-1].t != last:
                self.samples.append(sample)
            self.step = max(self.step * 2, 2 * (last - first) / self.points)

    def to_json(self) -> list[list[float]]:
        return [[s.t, s.rate, s.done] for s in self.samples]


class History:
    def __init__(self, jobs: int = JOBS, points: int = POINTS) -> None:
        self.jobs = jobs
        self.points = points
        self._series: OrderedDict[int, Series] = OrderedDict()

    def add(self, job_id: int, sample: Sample) -> None:
        series = self._series.get(job_id)
        if series is None:
            series = self._series[job_id] = Series(self.points)
            while len(self._series) > self.jobs:
                self._series.popitem(last=False)
        self._series.move_to_end(job_id)
        series.add(sample)

    def series(self, job_id: int) -> Series | None:
        return self._series.get(job_id)
