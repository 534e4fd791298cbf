"""huggingface_hub's HTTP, under pullman's control: timeouts on every request, calls that stop.

huggingface_hub makes its own requests (with httpx2, synchronously) and sends some with no
timeout at all. :func:`install` sets its client factory, once, to one whose transport asks the
current :class:`HubCall` (a context variable, copied into the worker thread) for the read timeout
and whether to go on. :func:`run_call` runs one metadata call in a worker thread with a watchdog:
when no answer came for ``deadline`` seconds the call is stopped (its next request fails at
once, so the abandoned thread ends) and the caller gets an error at once.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import httpx2

from pullman.core.proxies import Proxies
from pullman.errors import PullmanError, collapse_groups
from pullman.net.reach import REACH
from pullman.net.tls import check_ca_env

T = TypeVar("T")
DEFAULT_READ_TIMEOUT = 60.0


class HubCallStopped(Exception):
    """Raised inside huggingface_hub's thread (not an HTTP error, so it is not retried there)."""


class HubCall:
    """One metadata call through huggingface_hub, which pullman can stop from outside."""

    def __init__(
        self,
        max_requests: int,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        proxies: Proxies | None = None,
    ) -> None:
        self.max_requests = max_requests
        self.read_timeout = read_timeout
        self.proxies = proxies or Proxies()
        self.requests = 0
        self.last = time.monotonic()
        """When the call last gave us something (written by its thread, read by ours)."""
        self._stopped = threading.Event()

    def mark(self) -> None:
        """Something arrived (metadata, a listing entry): the call is alive."""
        self.last = time.monotonic()

    def idle(self) -> float:
        return time.monotonic() - self.last

    def stop(self) -> None:
        self._stopped.set()

    def check(self) -> None:
        """Before each request: fail it if the call was stopped or pages on for ever."""
        self.requests += 1
        if self._stopped.is_set():
            raise HubCallStopped("pullman stopped waiting for the Hub")
        if self.requests > self.max_requests:
            raise HubCallStopped(f"more than {self.max_requests} requests for one listing")


current: contextvars.ContextVar[HubCall | None] = contextvars.ContextVar("hub_call", default=None)


class _CallTransport(httpx2.BaseTransport):
    """Applies the current :class:`HubCall`'s checks, read timeout and proxies to every
    request (huggingface_hub's own transport would read proxies from the environment only)."""

    def __init__(self) -> None:
        self._inner: dict[str | None, httpx2.HTTPTransport] = {}

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        call = current.get()
        read = DEFAULT_READ_TIMEOUT
        proxy = None
        if call is not None:
            call.check()
            read = call.read_timeout
            proxy = call.proxies.for_url(str(request.url))
        timeout = httpx2.Timeout(connect=20.0, read=read, write=20.0, pool=20.0)
        request.extensions["timeout"] = timeout.as_dict()
        inner = self._inner.get(proxy)
        if inner is None:
            inner = self._inner[proxy] = httpx2.HTTPTransport(proxy=proxy, trust_env=True)
        response = inner.handle_request(request)
        REACH.mark(str(request.url))
        return response

    def close(self) -> None:
        for inner in self._inner.values():
            inner.close()


def _client_factory() -> httpx2.Client:
    from huggingface_hub.utils import _http

    hook = getattr(_http, "hf_request_event_hook", None)
    if hook is not None:
        hooks = {"request": [hook]}
    else:  # another huggingface_hub: take its hooks from its own client (a TLS context more)
        base = _http.default_client_factory()
        hooks = base.event_hooks
        base.close()
    return httpx2.Client(event_hooks=hooks, follow_redirects=True, transport=_CallTransport())


def install() -> None:
    """Make huggingface_hub use :func:`_client_factory` (idempotent)."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    if getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) is not _client_factory:
        set_client_factory(_client_factory)


async def run_call(
    fn: Callable[[HubCall], T],
    *,
    deadline: float,
    max_requests: int,
    stalled: Callable[[], PullmanError],
    proxies: Proxies | None = None,
) -> T:
    """``fn(call)`` in a worker thread; ``stalled()`` is raised once it went quiet for
    ``deadline`` seconds (``fn`` calls ``call.mark()`` whenever something arrives)."""
    install()
    check_ca_env()
    # The socket timeout is longer than the watchdog's, so a silent Hub is reported as such.
    call = HubCall(max_requests, read_timeout=deadline * 1.5 + 1, proxies=proxies)
    result: list[T] = []

    async def work() -> None:
        token = current.set(call)  # copied into the worker thread's context
        try:
            result.append(await anyio.to_thread.run_sync(fn, call, abandon_on_cancel=True))
        finally:
            current.reset(token)

    async def watchdog() -> None:
        while True:
            await anyio.sleep(min(1.0, deadline / 4))
            if call.idle() > deadline:
                call.stop()  # the abandoned thread's next request fails: it ends
                raise stalled()

    with collapse_groups():
        async with anyio.create_task_group() as tg:
            tg.start_soon(watchdog)
            await work()
            tg.cancel_scope.cancel()
    return result[0]
