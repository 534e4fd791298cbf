"""Pull-through: a file read while the engine downloads it, and ``pullman serve --pull-through``
costing the upstream one download however many clients ask.

The engine side runs in-process against the simulator (real sockets): readers of a
:class:`~pullman.transfer.landing.Landing` get each range once its bytes are on disk, and fail
when the download fails. The server side runs the real ``pullman serve`` command against a
throttled simulator registry, with concurrent plain-HTTP clients.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import pytest

from pullman.errors import NetworkError, NotFound, PullmanError
from pullman.testing import FlipByte, Simulator, Status, Throttle, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry
from pullman.transfer.engine import Transfer
from pullman.transfer.landing import CHUNK, Landing
from pullman.transfer.segments import SegmentMap

from helpers import KiB, MiB, cli_env, fast_config, no_traceback, pullman, spawn, spec_for

# ---------------------------------------------------------------------- the engine side


def run_bounded(main: Callable[[], Awaitable[None]], seconds: float) -> None:
    async def bounded() -> None:
        with anyio.fail_after(seconds):
            await main()

    anyio.run(bounded)


async def _read(landing: Landing, start: int, end: int | None) -> bytes:
    return b"".join([chunk async for chunk in landing.read(start, end)])


def test_readers_get_each_range_while_the_file_downloads(sim: Simulator, tmp_path: Path) -> None:
    data = make_data(3 * MiB, 1)
    sim.add_file("f", data, throttle=Throttle(rate=2 * MiB, per="request"))
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)
    seen: dict[str, object] = {}

    async def reader(name: str, start: int, end: int | None) -> None:
        assert landing.available(start) == start  # nothing of it is written yet: it waits
        got = await _read(landing, start, end)
        seen[name] = (got, landing.state)

    async def main() -> None:
        transfer = Transfer(spec, tmp_path / "staging", fast_config(), landing=landing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(transfer.run)
            tg.start_soon(reader, "all", 0, None)
            tg.start_soon(reader, "tail", len(data) - 100, len(data))
            tg.start_soon(reader, "middle", MiB + 7, 2 * MiB)

    run_bounded(main, 60)
    assert seen["all"][0] == data  # type: ignore[index]
    assert seen["tail"][0] == data[-100:]  # type: ignore[index]
    assert seen["middle"][0] == data[MiB + 7 : 2 * MiB]  # type: ignore[index]
    # The short ranges were answered before the whole file was committed.
    assert "writing" in (seen["tail"][1], seen["middle"][1])  # type: ignore[index]
    assert (tmp_path / "out" / "file.bin").read_bytes() == data
    assert sim.total_bytes_sent() < len(data) + 64 * KiB  # readers cost the upstream nothing


def test_a_reader_after_the_commit_reads_the_committed_file_in_bounded_chunks(
    sim: Simulator, tmp_path: Path
) -> None:
    data = make_data(2 * MiB + 5, 2)
    sim.add_file("f", data)
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)

    async def main() -> list[int]:
        await Transfer(spec, tmp_path / "staging", fast_config(), landing=landing).run()
        assert not list((tmp_path / "staging").glob("*.part"))
        return [len(chunk) async for chunk in landing.read(3, len(data))]

    sizes = anyio.run(main)
    assert landing.state == "done" and sum(sizes) == len(data) - 3
    assert max(sizes) <= CHUNK


def test_a_reader_keeps_its_descriptor_through_the_commit_and_a_removal(
    sim: Simulator, tmp_path: Path
) -> None:
    data = make_data(3 * MiB, 5)
    sim.add_file("f", data, throttle=Throttle(rate=4 * MiB, per="request"))
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)
    seen: dict[str, object] = {}

    async def reader() -> None:
        chunks = landing.read(0, None)
        first = await chunks.__anext__()  # opened on the staging file, mid-download
        seen["part_then"] = any((tmp_path / "staging").glob("*.part"))
        while landing.state != "done":
            await landing.changed()
        spec.dest.unlink()  # committed (renamed), then removed underneath: the fd still reads
        seen["data"] = first + b"".join([c async for c in chunks])

    async def main() -> None:
        transfer = Transfer(spec, tmp_path / "staging", fast_config(), landing=landing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await transfer.run()

    run_bounded(main, 60)
    assert seen["part_then"] is True and seen["data"] == data
    assert not spec.dest.exists()


def test_the_engine_fetches_first_where_readers_wait(sim: Simulator, tmp_path: Path) -> None:
    """An Ollama client asks its parts in parallel, far into the blob: the next piece the
    engine claims starts where a reader waits, not at the lowest free byte."""
    data = make_data(8 * MiB, 6)
    sim.add_file("f", data, throttle=Throttle(rate=1 * MiB, per="request"))
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)
    written_when_done: list[int] = []

    async def tail_reader() -> None:
        got = await _read(landing, len(data) - 64 * KiB, len(data))
        assert got == data[-64 * KiB :]
        written_when_done.append(landing.statistics().written)

    async def main() -> None:
        config = fast_config(connections=2)
        transfer = Transfer(spec, tmp_path / "staging", config, landing=landing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tail_reader)
            await transfer.run()

    run_bounded(main, 60)
    # Without steering the tail is the last piece written; with it, an early one.
    assert written_when_done and written_when_done[0] < len(data) // 2
    assert (tmp_path / "out" / "file.bin").read_bytes() == data


def test_a_claim_starts_at_the_lowest_wanted_offset_in_a_free_range() -> None:
    smap = SegmentMap(1000, [(0, 100)], min_piece=10)
    assert (c := smap.claim("a", 50, wanted=[700, 950])) and (c.start, c.end) == (700, 750)
    assert (c := smap.claim("b", 500, wanted=[720, 950])) and (c.start, c.end) == (950, 1000)
    assert (c := smap.claim("c", 50, wanted=[50])) and (c.start, c.end) == (
        100,
        150,
    )  # done: lowest
    assert smap.free_ranges() == [(150, 700), (750, 950)]


def test_a_download_that_fails_fails_its_waiting_readers(sim: Simulator, tmp_path: Path) -> None:
    data = make_data(MiB, 3)
    sim.add_file("f", data, faults=[Status(code=404, times=-1)])
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)
    errors: list[BaseException] = []

    async def reader() -> None:
        try:
            await _read(landing, 0, len(data))
        except PullmanError as exc:
            errors.append(exc)

    async def main() -> None:
        transfer = Transfer(spec, tmp_path / "staging", fast_config(), landing=landing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            with pytest.raises(NotFound):
                await transfer.run()

    run_bounded(main, 30)
    assert landing.state == "failed"
    assert len(errors) == 1 and isinstance(errors[0], NotFound)


def test_data_thrown_away_after_a_bad_digest_voids_a_reader_that_had_some(
    sim: Simulator, tmp_path: Path
) -> None:
    data = make_data(2 * MiB, 4)
    # The first copy is corrupt near its end: the engine hashes it, throws it away, fetches again.
    sim.add_file("f", data, faults=[FlipByte(offset=len(data) - 10, times=1)])
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)
    outcome: dict[str, object] = {}

    async def slow() -> None:  # one chunk of the bad run, then it dawdles past the restart
        chunks = landing.read(0, None)
        first = await chunks.__anext__()
        while landing.epoch == 0:
            await landing.changed()
        try:
            async for _ in chunks:
                pass
        except NetworkError as exc:
            outcome["slow"] = (first, exc)

    async def fresh() -> None:  # starts after the restart: reads only the good run
        while landing.epoch == 0:
            await landing.changed()
        outcome["fresh"] = await _read(landing, 0, None)

    async def main() -> None:
        transfer = Transfer(spec, tmp_path / "staging", fast_config(), landing=landing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            tg.start_soon(fresh)
            await transfer.run()

    run_bounded(main, 60)
    assert landing.epoch == 1  # started over once
    first, error = outcome["slow"]  # type: ignore[misc]
    assert first == data[: len(first)] and "started over" in str(error)
    assert outcome["fresh"] == data
    assert (tmp_path / "out" / "file.bin").read_bytes() == data


# ---------------------------------------------------------------------- pullman serve


class Served:
    """A running ``pullman serve`` (a subprocess), and plain HTTP requests to it."""

    def __init__(self, proc: subprocess.Popen[str], base: str, models: Path) -> None:
        self.proc = proc
        self.base = base
        self.models = models

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def blob_path(self, data: bytes) -> Path:
        return self.models / "blobs" / f"sha256-{hashlib.sha256(data).hexdigest()}"


@contextlib.contextmanager
def serving(tmp_path: Path, *args: str, **env: str) -> Iterator[Served]:
    models = tmp_path / "models"
    proc = spawn(
        "serve", "--listen", "127.0.0.1:0", "--ollama-dir", str(models),
        "--cache-dir", str(tmp_path / "hf"), "--json", *args, home=tmp_path / "home",
        env={**cli_env(tmp_path / "home"), "HF_HUB_DISABLE_XET": "1", **env},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield Served(proc, f"http://{json.loads(line)['listen']}", models)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pull(served: Served, name: str) -> dict[str, bytes]:
    """What ``ollama pull`` does, in plain HTTP: the manifest, then every blob (the big one in
    two ranges, as Ollama's parallel parts do); each blob's digest checked."""
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    status, raw, headers = served.get(f"/v2/{name}/manifests/latest", accept)
    assert status == 200, raw
    assert headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    doc = json.loads(raw)
    blobs: dict[str, bytes] = {"manifest": raw}
    for layer in [doc["config"], *doc["layers"]]:
        size, half = layer["size"], layer["size"] // 2
        url = f"/v2/{name}/blobs/{layer['digest']}"
        if size > 1 << 20:
            s1, first, _ = served.get(url, {"Range": f"bytes=0-{half - 1}"})
            s2, second, _ = served.get(url, {"Range": f"bytes={half}-"})
            assert (s1, s2) == (206, 206)
            data = first + second
        else:
            status, data, _ = served.get(url)
            assert status == 200
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
        blobs[layer["digest"]] = data
    return blobs


def _until(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_five_clients_pulling_a_new_model_cost_the_upstream_one_download(
    sim: Simulator, tmp_path: Path
) -> None:
    model = make_data(6 * MiB, 11)
    upstream = OllamaRegistry(sim)
    # Throttled (1 MiB/s per request): the download takes a while, so the clients overlap it.
    raw = upstream.add_model(
        "library/tiny", layers=[("model", model), ("template", b"{{ .Prompt }}")],
        throttle=Throttle(rate=1 * MiB, per="request"),
    )  # fmt: skip
    with serving(tmp_path, "--pull-through", "--insecure", "--registry", upstream.host) as srv:
        results: list[dict[str, bytes] | BaseException] = []
        in_store_at_start: list[bool] = []

        def client() -> None:
            try:
                assert srv.get("/v2/library/tiny/manifests/latest")[0] == 200
                in_store_at_start.append(srv.blob_path(model).exists())
                results.append(_pull(srv, "library/tiny"))
            except BaseException as exc:  # reported by the assert below
                results.append(exc)

        threads = [threading.Thread(target=client) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert all(isinstance(r, dict) for r in results), results
        # Every client asked while the download ran (the blob moves into blobs/ at its end).
        assert in_store_at_start == [False] * 5
        assert len(results) == 5
        for r in results:
            assert isinstance(r, dict)
            assert (
                r["manifest"] == raw and r["sha256:" + hashlib.sha256(model).hexdigest()] == model
            )
        # The job goes on to the end and lands in this box's store like a `pullman get`.
        manifest = srv.models / "manifests" / upstream.host / "library" / "tiny" / "latest"
        _until(manifest.exists)
        assert manifest.read_bytes() == raw and srv.blob_path(model).read_bytes() == model
        sent = sim.total_bytes_sent()
        blobs = sum(len(b) for b in results[0].values()) - len(raw)  # type: ignore[union-attr]
        print(f"\nupstream sent {sent} bytes; the model's blobs are {blobs} bytes; 5 clients")
        assert blobs <= sent < 1.1 * blobs  # one download, not five
        # Asked again now: from the store, not one more upstream byte.
        assert _pull(srv, "library/tiny")["manifest"] == raw
        assert sim.total_bytes_sent() == sent
    r = pullman("status", "--json", home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    jobs = [(job["ref"], job["state"]) for job in json.loads(r.stdout)]
    assert jobs == [(upstream.name("library/tiny"), "done")]  # one job, in the index


def test_pullman_get_clients_through_the_server_share_one_upstream_download(
    sim: Simulator, tmp_path: Path
) -> None:
    """A real client with its own parallel ranges: three ``pullman get`` at once."""
    model = make_data(5 * MiB, 16)
    upstream = OllamaRegistry(sim)
    raw = upstream.add_model(
        "library/tiny", layers=[("model", model)], throttle=Throttle(rate=1 * MiB, per="request")
    )
    with serving(tmp_path, "--pull-through", "--insecure", "--registry", upstream.host) as srv:
        name = srv.base.removeprefix("http://") + "/library/tiny"
        gets = [
            spawn(
                "get",
                "--insecure",
                "--ollama-dir",
                str(tmp_path / f"c{i}"),
                name,
                home=tmp_path / f"home{i}",
            )
            for i in range(3)
        ]
        for proc in gets:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    for i in range(3):
        store = tmp_path / f"c{i}"
        host = srv.base.removeprefix("http://")
        assert (store / "manifests" / host / "library" / "tiny" / "latest").read_bytes() == raw
        blob = store / "blobs" / f"sha256-{hashlib.sha256(model).hexdigest()}"
        assert blob.read_bytes() == model
    assert len(model) <= sim.total_bytes_sent() < 1.1 * len(model)


def test_a_range_beyond_what_is_written_waits_for_its_bytes(sim: Simulator, tmp_path: Path) -> None:
    model = make_data(4 * MiB, 12)
    upstream = OllamaRegistry(sim)
    upstream.add_model(
        "library/slow", layers=[("model", model)], throttle=Throttle(rate=1 * MiB, per="request")
    )
    digest = "sha256:" + hashlib.sha256(model).hexdigest()
    with serving(tmp_path, "--pull-through", "--insecure", "--registry", upstream.host) as srv:
        status, _, _ = srv.get("/v2/library/slow/manifests/latest")
        assert status == 200
        assert not srv.blob_path(model).exists()  # the download has only begun
        status, tail, headers = srv.get(
            f"/v2/library/slow/blobs/{digest}", {"Range": f"bytes={len(model) - 4096}-"}
        )
        assert status == 206 and tail == model[-4096:]
        assert (
            headers["Content-Range"] == f"bytes {len(model) - 4096}-{len(model) - 1}/{len(model)}"
        )
        status, whole, _ = srv.get(f"/v2/library/slow/blobs/{digest}")
        assert status == 200 and whole == model


def test_an_upstream_failure_fails_the_request_cleanly_and_a_later_one_succeeds(
    sim: Simulator, tmp_path: Path
) -> None:
    model = make_data(2 * MiB, 13)
    upstream = OllamaRegistry(sim)
    upstream.add_model("library/broken", layers=[("model", model)])
    blob = upstream.blob(model)
    blob.faults.append(Status(code=404, times=-1))  # the registry lost the blob, for now
    digest = "sha256:" + hashlib.sha256(model).hexdigest()
    with serving(tmp_path, "--pull-through", "--insecure", "--registry", upstream.host) as srv:
        status, _, _ = srv.get("/v2/library/broken/manifests/latest")
        assert status == 200
        status, body, _ = srv.get(f"/v2/library/broken/blobs/{digest}")
        assert status == 502 and b"upstream" in body  # nothing was sent yet: an error status
        assert srv.get("/v2/")[0] == 200  # the server is still up
        status, _, _ = srv.get("/v2/library/nothere/manifests/latest")
        assert status == 404  # the upstream does not have it: not found here either
        blob.faults.clear()  # the registry has it again: the next request starts the job again
        status, data, _ = srv.get(f"/v2/library/broken/blobs/{digest}")
        assert status == 200 and data == model
    assert srv.proc.returncode is not None
    stderr = srv.proc.stderr.read() if srv.proc.stderr else ""
    assert no_traceback(stderr), stderr


def test_a_failure_midway_ends_the_response_early_and_the_job_resumes_when_asked_again(
    sim: Simulator, tmp_path: Path
) -> None:
    model = make_data(4 * MiB, 17)
    upstream = OllamaRegistry(sim, redirect=False)  # a 404 from a CDN link is an expired link
    upstream.add_model(
        "library/midway", layers=[("model", model)], throttle=Throttle(rate=1 * MiB, per="request")
    )
    blob = upstream.blob(model)
    blob.faults.append(Status(code=404, on=(8,)))  # a request well into the download: a 404
    url = "/v2/library/midway/blobs/sha256:" + hashlib.sha256(model).hexdigest()
    with serving(tmp_path, "--pull-through", "--insecure", "--registry", upstream.host) as srv:
        assert srv.get("/v2/library/midway/manifests/latest")[0] == 200
        with (
            pytest.raises(http.client.IncompleteRead) as cut,
            urllib.request.urlopen(srv.base + url, timeout=60) as response,
        ):
            assert response.status == 200  # the first bytes were there: headers went out
            response.read()
        got = cut.value.partial
        assert 0 < len(got) < len(model) and got == model[: len(got)]  # what came was right
        assert srv.get("/v2/")[0] == 200
        first_run = sim.total_bytes_sent()
        # Asked again: the job starts again and resumes from what is on disk.
        status, data, _ = srv.get(url)
        assert status == 200 and data == model
    sent = sim.total_bytes_sent()
    print(f"\nupstream sent {first_run} bytes before the failure, {sent} in all, for {len(model)}")
    assert sent < len(model) + first_run  # resumed, not fetched again from the start
    assert sent < 1.5 * len(model)


def test_insecure_without_pull_through_is_a_usage_error(tmp_path: Path) -> None:
    r = pullman("serve", "--insecure", "--listen", "127.0.0.1:0", home=tmp_path / "home")
    assert r.returncode == 2 and "--insecure is for --pull-through" in r.stderr
    assert no_traceback(r.stderr)


def test_without_pull_through_a_missing_model_is_not_found(sim: Simulator, tmp_path: Path) -> None:
    upstream = OllamaRegistry(sim)
    upstream.add_model("library/tiny", layers=[("model", make_data(64 * KiB, 14))])
    with serving(tmp_path, "--registry", upstream.host) as srv:
        status, body, _ = srv.get("/v2/library/tiny/manifests/latest")
        assert status == 404 and b"MANIFEST_UNKNOWN" in body
    assert sim.total_bytes_sent() == 0 and upstream.manifest_requests == 0


CLIENTS = """
import hashlib, json, sys, threading
from huggingface_hub import snapshot_download
out, errors = {}, []
def client(i):
    try:
        folder = snapshot_download("org/tiny", cache_dir=f"{sys.argv[1]}/client{i}")
        out[i] = folder
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"folders": out, "errors": errors}))
"""


def test_five_huggingface_hub_clients_of_a_new_repo_cost_the_upstream_one_download(
    sim: Simulator, tmp_path: Path
) -> None:
    hub = HubSimulator(sim)
    files = {
        "config.json": b'{"model_type": "llama"}\n',
        "model.safetensors": make_data(4 * MiB, 15),
    }
    commit = hub.add_repo("org/tiny", files, throttle=Throttle(rate=1 * MiB, per="request"))
    with serving(tmp_path, "--pull-through", HF_ENDPOINT=hub.endpoint) as srv:
        env = {**cli_env(tmp_path / "home"), "HF_ENDPOINT": srv.base, "HF_HUB_DISABLE_XET": "1",
               "HF_HOME": str(tmp_path / "client-home")}  # fmt: skip
        env.pop("HF_TOKEN", None)
        run = subprocess.run(
            [sys.executable, "-c", CLIENTS, str(tmp_path / "clients")],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert result["errors"] == [] and len(result["folders"]) == 5
        for folder in result["folders"].values():
            assert Path(folder).name == commit
            for path, data in files.items():
                assert (Path(folder) / path).read_bytes() == data
        snapshot = tmp_path / "hf" / "models--org--tiny" / "snapshots" / commit
        _until(lambda: (snapshot / "model.safetensors").exists())
        assert (snapshot / "model.safetensors").read_bytes() == files["model.safetensors"]
    sent = sim.total_bytes_sent()
    size = sum(len(d) for d in files.values())
    print(f"\nupstream sent {sent} bytes for a repo of {size} bytes, 5 huggingface_hub clients")
    assert size <= sent < 1.1 * size


def test_a_private_repo_fetched_with_this_boxs_token_is_neither_fetched_nor_served(
    sim: Simulator, tmp_path: Path
) -> None:
    hub = HubSimulator(sim)
    weights = make_data(2 * MiB, 18)
    hub.add_repo("org/secret", {"weights.bin": weights}, private=True)
    hub.add_token("box-token")
    env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "box-token"}
    with serving(tmp_path, "--pull-through", **env) as srv:
        status, _, headers = srv.get("/api/models/org/secret/revision/main")
        assert status == 404 and headers.get("X-Error-Code") == "RepoNotFound"
        status, _, _ = srv.get("/org/secret/resolve/main/weights.bin")
        assert status == 404
    assert sim.total_bytes_sent() == 0  # not one byte of it was fetched
    r = pullman("status", "--json", home=tmp_path / "home")
    assert r.returncode == 0 and json.loads(r.stdout) == []  # and no job was started
    with serving(tmp_path, "--pull-through", "--serve-private", **env) as srv:  # when asked to
        status, data, _ = srv.get("/org/secret/resolve/main/weights.bin")
        assert status == 200 and data == weights


def test_a_hub_file_the_upstream_fails_is_a_502_in_the_hubs_dialect(
    sim: Simulator, tmp_path: Path
) -> None:
    hub = HubSimulator(sim)
    weights = make_data(2 * MiB, 19)
    hub.add_repo(
        "org/flaky", {"weights.bin": weights}, faults={"weights.bin": [Status(code=500, times=-1)]}
    )
    with serving(tmp_path, "--pull-through", HF_ENDPOINT=hub.endpoint) as srv:
        status, _, headers = srv.get("/org/flaky/resolve/main/weights.bin")
        assert status == 502 and "upstream" in headers["X-Error-Message"]
        assert srv.get("/api/models/org/flaky/revision/main")[0] == 200  # still up, still listed
        hub.file("org/flaky", "weights.bin").sim_file.faults.clear()  # the Hub heals
        status, data, headers = srv.get("/org/flaky/resolve/main/weights.bin")
        assert status == 200 and data == weights
        assert headers["X-Repo-Commit"] == hub.commit("org/flaky")


def test_a_dataset_comes_through_too(sim: Simulator, tmp_path: Path) -> None:
    hub = HubSimulator(sim)
    rows = make_data(3 * MiB, 20)
    commit = hub.add_repo("org/rows", {"data/train.parquet": rows}, repo_type="dataset")
    with serving(tmp_path, "--pull-through", HF_ENDPOINT=hub.endpoint) as srv:
        status, body, _ = srv.get("/api/datasets/org/rows/revision/main")
        assert status == 200 and json.loads(body)["sha"] == commit
        status, data, headers = srv.get("/datasets/org/rows/resolve/main/data/train.parquet")
        assert status == 200 and data == rows and headers["X-Repo-Commit"] == commit
        assert srv.get("/org/rows/resolve/main/data/train.parquet")[0] == 404  # not a model
    assert len(rows) <= sim.total_bytes_sent() < 1.1 * len(rows)
