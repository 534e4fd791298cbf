"""The API's pure parts on their own: the event fan-out stays bounded, the throughput history
stays bounded over a long life, the watcher's diff, and a POST /api/jobs body parsed."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import anyio
import pytest

from pullman.api.history import History, Sample, Series
from pullman.api.hub import QUEUE, Hub, TooManySubscribers, sse
from pullman.api.submit import request_from_json
from pullman.api.watcher import diff, seen
from pullman.core.jobs import Job
from pullman.errors import UsageError


def test_an_event_is_one_json_line() -> None:
    assert sse("job", {"a": 1}, 7) == b'id: 7\nevent: job\ndata: {"a":1}\n\n'
    assert sse("hello", {"a": "x\ny"}) == b'event: hello\ndata: {"a":"x\\ny"}\n\n'


def test_a_slow_subscriber_is_dropped_not_buffered_without_end() -> None:
    async def main() -> None:
        hub = Hub()
        with hub.subscribe() as slow, hub.subscribe() as fast:
            for i in range(QUEUE + 10):
                hub.publish("progress", {"i": i})
                if i < QUEUE:
                    assert await fast.receive() is not None
            assert slow.dropped and not fast.dropped
            received = 0
            while await slow.receive() is not None:
                received += 1
            assert received == QUEUE  # what fit, then the end of its stream
        assert hub.subscribers == 0

    anyio.run(main)


def test_there_is_a_cap_on_open_streams() -> None:
    hub = Hub(max_subscribers=3)
    with hub.subscribe(), hub.subscribe(), hub.subscribe():
        with pytest.raises(TooManySubscribers), hub.subscribe():
            pass
        assert hub.subscribers == 3
    with hub.subscribe():
        assert hub.subscribers == 1


def test_a_series_keeps_a_whole_life_in_bounded_points() -> None:
    series = Series(points=100)
    for t in range(36_000):  # ten hours, a sample a second
        series.add(Sample(float(t), 1e6 + t, t * 1000))
    samples = series.samples
    assert 50 <= len(samples) <= 101
    assert samples[0].t == 0.0 and samples[-1].t >= 35_000  # from the start to nearly now
    gaps = [b.t - a.t for a, b in itertools.pairwise(samples)]
    assert max(gaps) <= 3 * min(gaps)  # evenly thinned
    assert json.loads(json.dumps(series.to_json()))[0] == [0.0, 1e6, 0]


def test_the_history_forgets_the_oldest_jobs() -> None:
    history = History(jobs=3, points=10)
    for job_id in range(1, 6):
        history.add(job_id, Sample(1.0, 2.0, 3))
    assert [history.series(i) is not None for i in range(1, 6)] == [False, False, True, True, True]


def _job(job_id: int, state: str = "running", done: int = 0, priority: int = 0) -> Job:
    return Job(
        id=job_id, ref="r", options={}, priority=priority, state=state,  # type: ignore[arg-type]
        wait_reason=None, bytes_done=done, bytes_total=100, rate=1.0, error=None,
        created_at=0, updated_at=0, started_at=None, finished_at=None, pid=None,
    )  # fmt: skip


def test_the_watcher_diff() -> None:
    before = {1: seen(_job(1)), 2: seen(_job(2, "queued"))}
    jobs = [_job(1, done=50), _job(2, "paused"), _job(3, "queued")]
    changed, moving = diff(before, jobs)
    assert [(j.id, old) for j, old in changed] == [(2, "queued"), (3, None)]
    assert [j.id for j in moving] == [1]
    changed, moving = diff({1: seen(_job(1))}, [_job(1, priority=5)])
    assert [j.id for j, _ in changed] == [1] and moving == []


def test_a_post_body_becomes_a_get_request(tmp_path: Path) -> None:
    request = request_from_json(
        {
            "refs": ["qwen2.5:7b"],
            "priority": 2,
            "to": ["ollama"],
            "cwd": str(tmp_path),
            "output": None,
            "include": ["*.gguf"],
            "limit": "5MB/s",
        }
    )
    assert request.refs == ("qwen2.5:7b",) and request.detach and request.priority == 2
    assert request.to == ("ollama",) and request.include == ("*.gguf",)
    assert request.options().cwd == str(tmp_path)
    relative = request_from_json({"refs": ["http://h/x"], "output": "a/b", "cwd": str(tmp_path)})
    assert relative.options().out == str(tmp_path / "a" / "b")
    bad_bodies: list[dict[str, object]] = [
        {"refs": ["x"], "priority": True},
        {"refs": ["x"], "connections": 0},
        {"refs": ["x"], "cwd": "rel"},
        {"refs": [1]},
        {"refs": ["x"], "token_file": "t"},
    ]
    for bad in bad_bodies:
        with pytest.raises(UsageError):
            request_from_json(bad)


def test_the_index_tells_its_listener_after_each_committed_write(tmp_path: Path) -> None:
    from pullman.index import Index

    calls: list[int] = []
    with Index.open(tmp_path / "index.db") as index:
        stop = index.on_change(lambda: calls.append(1))
        job_id = index.add_job("r")
        assert calls == [1]
        index.set_priority(job_id, 3)
        assert index.job(job_id).priority == 3  # type: ignore[union-attr]
        with pytest.raises(LookupError):
            index.set_priority(999, 1)  # rolled back: no write, no call
        assert calls == [1, 1]
        index.jobs()  # a read is no change
        stop()
        index.set_setting("limit", "1MB/s")
        assert calls == [1, 1]
