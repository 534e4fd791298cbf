"""Showing progress: rich bars on a terminal, plain periodic lines otherwise (cron, journald),
or events (``--progress json``: one JSON object a line; the Python API's ``progress=`` callback
gets the same objects, built by :func:`progress_event`)."""

from __future__ import annotations

import inspect
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TextIO, TypedDict, TypeVar

import anyio

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

from pullman.core.units import human
from pullman.errors import collapse_groups
from pullman.transfer.stats import TransferStats

T = TypeVar("T")
StatsSource = Callable[[], list[TransferStats]]


class ProgressEvent(TypedDict):
    """One file's progress, as ``--progress json`` prints it and ``progress=`` receives it."""

    event: str
    """``progress`` while it runs; ``end`` once, for each file, when the run stops."""
    file: str
    state: str
    """``downloading``, ``verifying``, ``committing``, ``done``, ... (the transfer's)."""
    size: int
    done: int
    verified: int
    """Bytes hashed and found good so far (the verified prefix)."""
    percent: float
    rate: float
    """Bytes per second, now."""
    eta: float | None
    """Seconds left at the current rate (None: unknown, 0: nothing left)."""
    connections: int
    recycles: int
    retries: int
    note: str
    time: float
    """When (Unix time)."""


Emit = Callable[[ProgressEvent], Awaitable[None] | None]
"""Where events go: a function, or a coroutine function (awaited)."""


def progress_event(s: TransferStats, event: str = "progress") -> ProgressEvent:
    remaining = max(0, s.size - s.done)
    eta = None if remaining and s.rate <= 0 else round(remaining / s.rate, 1) if remaining else 0.0
    return ProgressEvent(
        event=event,
        file=s.name,
        state=s.state,
        size=s.size,
        done=s.done,
        verified=s.verified,
        percent=round(100.0 * s.done / s.size, 2) if s.size else 100.0,
        rate=round(s.rate, 1),
        eta=eta,
        connections=s.connections,
        recycles=s.recycles,
        retries=s.retries,
        note=s.note,
        time=round(time.time(), 3),
    )


def choose_mode(requested: str, stream: TextIO) -> str:
    if requested != "auto":
        return requested
    return "bar" if stream.isatty() else "plain"


def _extra(s: TransferStats) -> str:
    parts = [f"conns {s.connections}"]
    if s.recycles:
        parts.append(f"recycled {s.recycles}")
    if s.retries:
        parts.append(f"retries {s.retries}")
    if s.state in ("verifying", "committing"):
        parts.append("verifying")
    if s.note:
        parts.append(f"({s.note})")
    return " ".join(parts)


def plain_line(s: TransferStats) -> str:
    pct = 100.0 * s.done / s.size if s.size else 100.0
    eta = _eta(s.size - s.done, s.rate)
    return (
        f"{s.name}: {pct:5.1f}% {human(s.done)}/{human(s.size)} "
        f"{human(s.rate)}/s {eta + ' ' if eta else ''}{_extra(s)} [{s.state}]"
    )


class ProgressView:
    """Polls transfer statistics and draws them until cancelled."""

    def __init__(
        self,
        mode: str,
        stream: TextIO | None = None,
        *,
        plain_interval: float = 5.0,
        emit: Emit | None = None,
        event_interval: float = 0.5,
    ) -> None:
        """``json`` mode: events every ``event_interval`` seconds for each file that changed,
        to ``emit`` (default: one line each on ``stream``)."""
        self.stream = stream or sys.stderr
        self.mode = choose_mode(mode, self.stream)
        self.plain_interval = plain_interval
        self.emit = emit or self._print_event
        self.event_interval = event_interval

    async def run(self, source: StatsSource) -> None:
        if self.mode == "bar":
            await self._bars(source)
        elif self.mode == "plain":
            await self._plain(source)
        elif self.mode == "json":
            await self._events(source)
        else:
            await anyio.sleep_forever()

    def _print_event(self, event: ProgressEvent) -> None:
        print(json.dumps(event), file=self.stream, flush=True)

    async def _events(self, source: StatsSource) -> None:
        last: dict[str, TransferStats] = {}
        try:
            while True:
                for s in source():
                    if last.get(s.name) != s:
                        last[s.name] = s
                        await self._send(progress_event(s))
                await anyio.sleep(self.event_interval)
        finally:
            with anyio.CancelScope(shield=True):
                for s in source():
                    await self._send(progress_event(s, "end"))

    async def _send(self, event: ProgressEvent) -> None:
        sent = self.emit(event)
        if inspect.isawaitable(sent):
            await sent

    async def _plain(self, source: StatsSource) -> None:
        last: dict[str, str] = {}
        try:
            while True:
                await anyio.sleep(self.plain_interval)
                self._print_plain(source(), last)
        finally:
            self._print_plain(source(), last)

    def _print_plain(self, stats: list[TransferStats], last: dict[str, str]) -> None:
        for s in stats:
            line = plain_line(s)
            if last.get(s.name) != line:
                print(line, file=self.stream, flush=True)
                last[s.name] = line

    async def _bars(self, source: StatsSource) -> None:
        from rich.console import Console  # only terminals need rich
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        console = Console(file=self.stream)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            TextColumn("{task.fields[info]}"),
        )
        tasks: dict[str, TaskID] = {}
        with Progress(*columns, console=console, transient=False, refresh_per_second=10) as bar:
            total_id: TaskID | None = None
            try:
                while True:
                    total_id = self._update_bars(bar, tasks, total_id, source())
                    await anyio.sleep(0.1)
            finally:
                self._update_bars(bar, tasks, total_id, source())

    def _update_bars(
        self,
        bar: Progress,
        tasks: dict[str, TaskID],
        total_id: TaskID | None,
        stats: list[TransferStats],
    ) -> TaskID | None:
        for s in stats:
            if s.name not in tasks:
                tasks[s.name] = bar.add_task(_short(s.name), total=s.size or 1, info="")
            bar.update(tasks[s.name], completed=s.done, total=s.size or 1, info=_info(s))
        if len(tasks) > 1:
            if total_id is None:
                total_id = bar.add_task("total", total=None, info="")
            size = sum(s.size for s in stats)
            done = sum(s.done for s in stats)
            rate = sum(s.rate for s in stats)
            info = f"{human(done)}/{human(size)} {human(rate)}/s {_eta(size - done, rate)}"
            bar.update(total_id, completed=done, total=size or 1, info=info)
        return total_id


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _eta(remaining: int, rate: float) -> str:
    if remaining <= 0:
        return ""
    if rate <= 0:
        return "eta -"
    seconds = int(remaining / rate)
    return f"eta {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _info(s: TransferStats) -> str:
    eta = _eta(s.size - s.done, s.rate)
    return (
        f"{human(s.done)}/{human(s.size)} {human(s.rate)}/s {eta + ' ' if eta else ''}{_extra(s)}"
    )


class Observable(Protocol):
    def statistics(self) -> list[TransferStats]: ...


async def with_view(view: ProgressView, source: Observable, work: Awaitable[T]) -> T:
    """Run ``work`` while ``view`` draws ``source``'s statistics."""
    with collapse_groups():
        return await _with_view_group(view, source, work)


async def _with_view_group(view: ProgressView, source: Observable, work: Awaitable[T]) -> T:
    result: list[T] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(view.run, source.statistics)
        try:
            result.append(await work)
        finally:
            tg.cancel_scope.cancel()
    return result[0]
