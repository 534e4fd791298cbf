"""No network, a typo, a dead host: a clear error within seconds in the foreground; patience
once a host has answered; and the daemon waits for the network instead of failing."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import anyio
import anyio.lowlevel

from pullman import config
from pullman.core.jobs import GetOptions, JobOptions
from pullman.errors import NetworkError, Unreachable
from pullman.index import Index
from pullman.net.reach import REACH
from pullman.net.retry import RetryPolicy
from pullman.progress import plain_line
from pullman.scheduler import Scheduler
from pullman.testing import Simulator, Status, make_data
from pullman.transfer.engine import Transfer

from helpers import FastClock, KiB, cli_env, fast_config, fast_env, free_port, pullman, spec_for


def test_an_unresolvable_host_fails_within_seconds_naming_it(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home", PULLMAN_TRANSFER_RETRY_INITIAL="0.5")
    started = time.monotonic()
    r = pullman("-v", "get", "http://no-such-host.invalid/m.gguf", home=tmp_path, env=env)
    elapsed = time.monotonic() - started
    assert r.returncode == 1
    assert "could not resolve host no-such-host.invalid" in r.stderr
    assert "retry 1/3 in 0.5 s: could not resolve host" in r.stderr  # -v shows each retry
    assert "retry 3/" not in r.stderr  # three attempts in all, then the error
    assert elapsed < 10


def test_a_host_that_answered_before_gets_the_full_budget() -> None:
    policy = RetryPolicy(attempts=8, first_contact=3)
    url = f"http://127.0.0.1:{free_port()}/x"
    error = Unreachable("connection refused", url=url)
    assert policy.limit(error) == 3
    assert policy.limit(NetworkError("connection reset")) == 8
    REACH.mark(url)
    assert policy.limit(error) == 8


def test_the_progress_line_says_which_retry_and_why(sim: Simulator, tmp_path: Path) -> None:
    # Over 256 KiB: a smaller file of known size comes whole with its probe (request 1).
    f = sim.add_file("f", make_data(512 * KiB, 1), faults=[Status(code=503, on=(2, 3))])
    notes: list[str] = []
    transfer: Transfer

    async def sleep(seconds: float) -> None:  # the backoff: see what the progress shows then
        notes.append(transfer.statistics().note)
        await anyio.lowlevel.checkpoint()

    transfer = Transfer(spec_for(sim.url("f"), tmp_path, f.data), tmp_path / "s", fast_config(),
                        sleep=sleep)  # fmt: skip
    anyio.run(transfer.run)
    retries = [n for n in notes if n.startswith("retry")]
    assert retries and "answered 503" in retries[0]
    assert retries[0].startswith("retry 1/6 in ")
    assert transfer.statistics().note == ""  # bytes flowed again
    line = plain_line(transfer.statistics()._replace(note=retries[0]))
    assert f"({retries[0]})" in line


def test_the_daemon_waits_for_the_network_and_then_finishes(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PULLMAN_HOME": str(tmp_path / "home"),
        **fast_env(),
        "PULLMAN_SCHEDULE_NETWORK_RETRY": "60",
    }
    settings = config.load(env=env)
    index = Index.open(settings.paths.index)
    out = tmp_path / "m.bin"
    job = index.add_job(
        f"http://127.0.0.1:{port}/files/m.bin", JobOptions(GetOptions(out=str(out))).to_json()
    )
    clock = FastClock(datetime(2026, 11, 22, 12, 0, 0))  # 60 s of retry wait is 1 s real
    scheduler = Scheduler(settings, index, clock=clock)  # as the daemon runs it
    data = make_data(128 * KiB, 2)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: scheduler.run(only=[job]))
            with anyio.fail_after(30):
                while (j := index.job(job)) is None or j.state != "waiting":
                    await anyio.sleep(0.02)
            reason = index.job(job).wait_reason or ""  # type: ignore[union-attr]
            assert "waiting for the network: connection refused by 127.0.0.1" in reason
            with Simulator(port=port) as sim:  # the network comes back
                sim.add_file("m.bin", data)
                with anyio.fail_after(30):
                    while (j := index.job(job)) is None or j.state != "done":
                        await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert out.read_bytes() == data
    kinds = [e.kind for e in index.events(job)]
    assert kinds[:2] == ["started", "waiting"] and kinds[-1] == "done"
