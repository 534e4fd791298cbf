"""The API's handlers: thin over :mod:`pullman.jobcontrol`, :mod:`pullman.jobqueue` and the index.

Every index call runs in a worker thread (the index is synchronous SQLite). Errors are raised as
:mod:`pullman.errors` and turned into JSON by :mod:`pullman.api.middleware`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final, TypeVar

import anyio
from aiohttp import web

from pullman import __version__
from pullman.api.history import History
from pullman.api.hub import Hub, Subscriber, TooManySubscribers, sse
from pullman.api.views import detail_json, job_json, marks_json
from pullman.config import Settings
from pullman.errors import UsageError
from pullman.index import Index
from pullman.jobcontrol import ACTIONS, apply, current_limit, get_job, set_limit, set_priority
from pullman.transfer.stats import TransferStats

API_VERSION: Final = 1
PING_EVERY: Final = 15.0
MAX_BODY: Final = 64 * 1024
T = TypeVar("T")


@dataclass
class ApiState:
    """What the handlers share, in the daemon's process."""

    settings: Settings
    index: Index
    hub: Hub = field(default_factory=Hub)
    history: History = field(default_factory=History)
    stats_for: Callable[[int], list[TransferStats]] = lambda _job_id: []
    wake: Callable[[], None] = lambda: None
    """Wake the scheduler (a control changed a job or the limit)."""
    notify: Callable[[], None] = lambda: None
    """Tell the watcher the index may have changed (another process woke the daemon)."""
    listen: str | None = None
    """The TCP listener's base URL (``http://127.0.0.1:8765/``), when there is one."""


STATE: Final = web.AppKey("state", ApiState)


def _state(request: web.Request) -> ApiState:
    return request.app[STATE]


async def _index(request: web.Request, fn: Callable[[Index], T]) -> T:
    index = _state(request).index
    return await anyio.to_thread.run_sync(lambda: fn(index))


def _job_id(request: web.Request) -> int:
    text = request.match_info["job_id"]
    if not text.isdigit():
        raise UsageError(f"not a job id: {text!r}", hint="job ids are whole numbers")
    return int(text)


async def body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 400 (UsageError) for anything else."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise UsageError(f"the request body is larger than {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise UsageError(f"the request body is larger than {MAX_BODY} bytes")
    try:
        doc = json.loads(raw or b"{}")
    except ValueError as exc:
        raise UsageError("the request body is not valid JSON", why=str(exc)) from None
    if not isinstance(doc, dict):
        raise UsageError("the request body must be a JSON object")
    return doc


# ------------------------------------------------------------------------------ reads


async def health(request: web.Request) -> web.Response:
    state = _state(request)
    jobs = await _index(request, lambda index: index.jobs())
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    return web.json_response(
        {
            "ok": True,
            "api_version": API_VERSION,
            "version": __version__,
            "listen": state.listen,
            "jobs": counts,
            "event_streams": state.hub.subscribers,
        }
    )


async def list_jobs(request: web.Request) -> web.Response:
    jobs = await _index(request, lambda index: index.jobs())
    limit = await _index(
        request, lambda i: current_limit(i, _state(request).settings.schedule.limit)
    )
    return web.json_response({"jobs": [job_json(j) for j in jobs], **limit.to_json()})


async def one_job(request: web.Request) -> web.Response:
    job_id = _job_id(request)
    job = await _index(request, lambda index: get_job(index, job_id))
    events = await _index(request, lambda index: index.events(job_id))
    files = _state(request).stats_for(job_id)
    return web.json_response({"job": detail_json(job, files, events)})


async def history(request: web.Request) -> web.Response:
    job_id = _job_id(request)
    job = await _index(request, lambda index: get_job(index, job_id))
    events = await _index(request, lambda index: index.events(job_id))
    series = _state(request).history.series(job_id)
    return web.json_response(
        {
            "job_id": job.id,
            "fields": ["t", "rate", "done"],
            "samples": series.to_json() if series is not None else [],
            "marks": marks_json(events),
        }
    )


async def get_limit(request: web.Request) -> web.Response:
    default = _state(request).settings.schedule.limit
    limit = await _index(request, lambda index: current_limit(index, default))
    return web.json_response(limit.to_json())


# ------------------------------------------------------------------------------ changes


async def control(request: web.Request) -> web.Response:
    job_id = _job_id(request)
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound()
    job = await _index(request, lambda index: apply(index, job_id, action))
    _state(request).wake()
    return web.json_response({"job": job_json(job)})


async def priority(request: web.Request) -> web.Response:
    job_id = _job_id(request)
    doc = await body(request)
    if "priority" not in doc:
        raise UsageError('the body needs "priority": a whole number (higher runs first)')
    job = await _index(request, lambda index: set_priority(index, job_id, doc["priority"]))
    _state(request).wake()
    return web.json_response({"job": job_json(job)})


async def put_limit(request: web.Request) -> web.Response:
    doc = await body(request)
    value = doc.get("limit", "missing")
    if value is None:
        value = "off"
    if value == "missing" or not isinstance(value, str | int | float) or isinstance(value, bool):
        raise UsageError('the body needs "limit": a rate like "20MB/s", a number, or "off"')
    limit = await _index(request, lambda index: set_limit(index, value))
    _state(request).wake()
    return web.json_response(limit.to_json())


async def add_jobs(request: web.Request) -> web.Response:
    from pullman.api.submit import queue_from_json  # the `get` options: loaded on first use

    doc = await body(request)
    state = _state(request)
    queued = await anyio.to_thread.run_sync(
        lambda: queue_from_json(state.index, state.settings, doc)
    )
    state.wake()
    return web.json_response({"jobs": queued}, status=201)


# ------------------------------------------------------------------------------ events


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events (the format: :mod:`pullman.api`)."""
    state = _state(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    try:
        with state.hub.subscribe() as subscriber:
            await response.prepare(request)
            await response.write(await _hello(request))
            await _stream(response, subscriber)
    except TooManySubscribers as exc:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": {"what": str(exc), "status": 503}}),
            content_type="application/json",
        ) from None
    except ConnectionError:  # the client went away mid-stream: nothing to answer
        pass
    return response


async def _hello(request: web.Request) -> bytes:
    state = _state(request)
    jobs = await _index(request, lambda index: index.jobs())
    limit = await _index(request, lambda i: current_limit(i, state.settings.schedule.limit))
    doc = {"api_version": API_VERSION, "jobs": [job_json(j) for j in jobs], **limit.to_json()}
    return sse("hello", {**doc, "seq": state.hub.seq})


async def _stream(response: web.StreamResponse, subscriber: Subscriber) -> None:
    while True:
        message = None
        with anyio.move_on_after(PING_EVERY) as scope:
            message = await subscriber.receive()
        if scope.cancelled_caught:
            await response.write(b": ping\n\n")
            continue
        if message is None:
            return
        await response.write(message)


# ------------------------------------------------------------------------------ the page


def static_bytes(name: str) -> bytes:
    return resources.files("pullman.api").joinpath("static", name).read_bytes()


async def page(request: web.Request) -> web.Response:
    return web.Response(body=static_bytes("index.html"), content_type="text/html")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    folder = resources.files("pullman.api").joinpath("static")
    known = {p.name for p in folder.iterdir() if p.is_file()}
    if name not in known:  # never a path from the request: only files that ship
        raise web.HTTPNotFound()
    kinds = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".ico": "image/x-icon",
        ".json": "application/json",
        ".webmanifest": "application/manifest+json",
    }
    kind = next((k for suffix, k in kinds.items() if name.endswith(suffix)), "text/html")
    return web.Response(body=static_bytes(name), content_type=kind)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/jobs", list_jobs)
    app.router.add_post("/api/jobs", add_jobs)
    app.router.add_get("/api/jobs/{job_id}", one_job)
    app.router.add_get("/api/jobs/{job_id}/history", history)
    app.router.add_post("/api/jobs/{job_id}/{action}", control)
    app.router.add_put("/api/jobs/{job_id}/priority", priority)
    app.router.add_get("/api/limit", get_limit)
    app.router.add_put("/api/limit", put_limit)
    app.router.add_get("/api/events", events)
