"""``--via-server``: pulling through a running Ollama server, and asking it what it sees.

The Ollama server cannot be installed here, so these tests run the real ``ollama`` Python client
against the scripted stand-in (:mod:`pullman.testing.ollama_api`), a real HTTP server on loopback.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import anyio
import pytest

from pullman.errors import NetworkError, NotFound, ServerError
from pullman.sources.ollama_server import server_sees
from pullman.testing.ollama_api import OllamaAPI, PullScript
from pullman.transfer.via_server import ServerPull, ServerPullOutcome

from helpers import KiB, MiB, Recorder, free_port

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def api() -> Iterator[OllamaAPI]:
    with OllamaAPI() as a:
        yield a


def pull(api: OllamaAPI, model: str, **knobs: object) -> tuple[ServerPullOutcome, ServerPull]:
    settings: dict[str, object] = {
        "recycle_after": 30.0,
        "pause": 0.05,
        "stall_timeout": 5.0,
        "slow_grace": 0.3,
        "max_failures": 4,
    }
    settings.update(knobs)
    puller = ServerPull(model, host=api.url, **settings)  # type: ignore[arg-type]
    return anyio.run(puller.run), puller


def test_slow_streams_finish_because_they_are_recycled(api: OllamaAPI) -> None:
    script = PullScript(fast_rate=32 * MiB, burst_bytes=1 * MiB, slow_rate=32 * KiB)
    api.script = script
    sizes = [3 * MiB, 400]
    api.add_model("tiny", sizes)
    outcome, puller = pull(api, "tiny")
    # One stream alone gets one burst, then crawls through the rest at slow_rate.
    one_stream = script.burst_bytes / script.fast_rate + (sum(sizes) - script.burst_bytes) / (
        script.slow_rate
    )
    assert outcome.restarts >= 1
    assert outcome.reasons.get("slow", 0) >= 1
    assert outcome.failures == 0
    assert outcome.total_bytes == sum(sizes)
    assert outcome.elapsed < one_stream / 10
    assert api.pulls == outcome.restarts + 1
    assert api.closed_early == list(range(1, api.pulls))
    stats = puller.statistics()
    assert [s.size for s in stats] == sizes
    assert all(s.state == "done" and s.done == s.size for s in stats)
    assert all(s.name.startswith("tiny ") and len(s.name) == len("tiny ") + 12 for s in stats)
    assert stats[0].recycles == outcome.restarts
    assert anyio.run(server_sees, "tiny", api.url).state == "ready"


def test_time_box_recycles_a_long_stream(api: OllamaAPI) -> None:
    api.script = PullScript(fast_rate=1 * MiB)  # steady, never slow: only the time box stops it
    api.add_model("steady", [1 * MiB])
    outcome, _ = pull(api, "steady", recycle_after=0.4)
    assert outcome.reasons == {"time box": outcome.restarts}
    assert outcome.restarts >= 1
    assert outcome.failures == 0
    assert api.models["steady:latest"].installed


@pytest.mark.parametrize("after", [256 * KiB, 0], ids=["mid-stream", "before-any-line"])
def test_a_stalled_stream_is_recycled(api: OllamaAPI, after: int) -> None:
    api.script = PullScript(fast_rate=4 * MiB, stall_on={1}, stall_after=after)
    api.add_model("stally", [1 * MiB])
    started = time.monotonic()
    outcome, _ = pull(api, "stally", stall_timeout=0.5)
    assert outcome.reasons == {"stall": 1}
    assert outcome.restarts == 1
    # A stall that moved nothing also spends the retry budget (so it cannot loop forever).
    assert outcome.failures == (1 if after == 0 else 0)
    assert api.pulls == 2
    assert api.closed_early == [1]
    assert time.monotonic() - started < 3


def test_unknown_model_is_not_found_without_retrying(api: OllamaAPI) -> None:
    with pytest.raises(NotFound) as caught:
        pull(api, "no-such-model")
    assert "file does not exist" in caught.value.explain()
    assert api.pulls == 1


def test_a_server_that_is_not_running_is_a_network_error() -> None:
    started = time.monotonic()
    puller = ServerPull("tiny", host=f"http://127.0.0.1:{free_port()}", pause=0.01)
    with pytest.raises(NetworkError) as caught:
        anyio.run(puller.run)
    message = caught.value.explain()
    assert "cannot reach the Ollama server at http://127.0.0.1:" in message
    assert "ollama serve" in message
    assert "--via-server" in message
    assert time.monotonic() - started < 2  # not retried: it never answered


def test_error_lines_and_http_errors_are_retried_then_succeed(api: OllamaAPI) -> None:
    api.script = PullScript(
        fast_rate=8 * MiB,
        error_on={1: "max retries exceeded: EOF", 2: "max retries exceeded: EOF"},
        http_error_on={3: 500},
    )
    api.add_model("flaky", [1 * MiB])
    sleep = Recorder()
    outcome, puller = pull(api, "flaky", sleep=sleep)
    assert outcome.failures == 3
    assert outcome.restarts == 0
    assert api.pulls == 4
    assert sleep.waits == sorted(sleep.waits) and len(sleep.waits) == 3  # backing off
    assert puller.statistics()[0].state == "done"
    assert api.pull_bodies[0] == {"model": "flaky", "insecure": False, "stream": True}


def test_failures_without_progress_give_up(api: OllamaAPI) -> None:
    api.script = PullScript(http_error_on=dict.fromkeys(range(1, 10), 500))
    api.add_model("broken", [1 * MiB])
    with pytest.raises(ServerError) as caught:
        pull(api, "broken", max_failures=3, sleep=Recorder())
    assert "gave up after 3" in str(caught.value)
    assert "HTTP 500" in caught.value.explain()
    assert api.pulls == 3


def test_progress_resets_the_failure_budget(api: OllamaAPI) -> None:
    # Each attempt moves some bytes before its error line: never three failures *in a row*.
    api.script = PullScript(
        fast_rate=2 * MiB,
        error_on=dict.fromkeys(range(1, 5), "unexpected EOF"),
        error_after=64 * KiB,
    )
    api.add_model("bumpy", [512 * KiB])
    outcome, _ = pull(api, "bumpy", max_failures=2, sleep=Recorder())
    assert outcome.failures >= 2
    assert api.models["bumpy:latest"].installed


def test_server_sees_each_state(api: OllamaAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    api.add_model("here", [1 * KiB], installed=True)
    api.add_model("elsewhere", [1 * KiB])  # the registry has it, this server's store does not

    ready = anyio.run(server_sees, "here", api.url)
    assert ready.state == "ready"
    hidden = anyio.run(server_sees, "elsewhere:latest", api.url)
    assert hidden.state == "not_visible"
    assert "OLLAMA_MODELS" in hidden.detail
    gone = anyio.run(server_sees, "here", f"http://127.0.0.1:{free_port()}")
    assert gone.state == "not_running"

    monkeypatch.setenv("OLLAMA_HOST", api.url)  # the client reads it when no host is given
    assert anyio.run(server_sees, "here").state == "ready"


def test_server_sees_a_server_that_does_not_answer_in_time() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        check = anyio.run(server_sees, "here", f"http://127.0.0.1:{port}", 0.3)
    assert check.state == "not_running"
    assert time.monotonic() - started < 2
