"""Around every handler: errors as JSON (never a traceback), the token and CSRF checks on TCP,
and an access log that never shows a token.

Status codes: 400 bad input (malformed JSON, a bad value: :class:`~pullman.errors.UsageError`),
401 no valid token, 403 a forged-looking state change, 404 an unknown job or route
(:class:`~pullman.errors.NotFound`), 409 a move the job's state does not allow
(:class:`~pullman.errors.JobConflict`), 503 the index's disk failed or too many event streams,
500 a bug (logged; the answer says only "internal error"). Each is
``{"error": {"what": ..., "why": ..., "hint": ..., "status": N}}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware

from pullman.api.auth import (
    COOKIE,
    authenticated,
    csrf_refusal,
    redacted,
    same_token,
)
from pullman.errors import JobConflict, NotFound, PullmanError, StorageError, UsageError

log = logging.getLogger("pullman.api")
access = logging.getLogger("pullman.api.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATUS: Final = ((JobConflict, 409), (NotFound, 404), (UsageError, 400), (StorageError, 503))


def error_response(
    status: int, what: str, *, why: str | None = None, hint: str | None = None, **extra: object
) -> web.Response:
    doc = {"what": what, "why": why, "hint": hint, "status": status, **extra}
    return web.json_response({"error": doc}, status=status)


def status_for(error: PullmanError) -> int:
    return next((code for kind, code in STATUS if isinstance(error, kind)), 500)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except JobConflict as exc:
        return error_response(409, exc.what, why=exc.why, hint=exc.hint, current=exc.current)
    except PullmanError as exc:
        return error_response(status_for(exc), exc.what, why=exc.why, hint=exc.hint)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        return error_response(exc.status, exc.reason)
    except ValueError as exc:  # a value the job model refuses (secrets in options, ...)
        return error_response(400, str(exc))
    except Exception as exc:  # a bug: logged here, never sent to the client
        log.exception("internal error answering %s %s", request.method, redacted(request.path))
        return error_response(500, f"internal error: {type(exc).__name__}")


def token_guard(token: str) -> Middleware:
    """The TCP listener's gate: a valid token (or its cookie), and CSRF checks on changes."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.query.get("token")
        if request.path == "/" and given is not None:
            return _trade(given, token)
        if not authenticated(request.headers, request.cookies, token):
            return error_response(
                401,
                "this pullman API needs its token",
                hint="open the address `pullman web --url` prints, or send "
                "`Authorization: Bearer <token>` (the token is in the state directory's api-token)",
            )
        refusal = csrf_refusal(request.method, request.headers)
        if refusal is not None:
            return error_response(
                403, refusal, hint="send the request from the dashboard, or add X-Pullman-CSRF: 1"
            )
        return await handler(request)

    return guard


def _trade(given: str, token: str) -> web.StreamResponse:
    """``/?token=``: set the cookie and send the browser to ``/`` without the token."""
    if not same_token(given, token):
        return error_response(
            401, "that token is not this daemon's", hint="run `pullman web --url`"
        )
    response = web.Response(status=303, headers={"Location": "/"})
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


class AccessLog(AbstractAccessLogger):
    """One line per request, ``token=`` redacted; the socket's own requests at debug level."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        peer = request.remote or "socket"
        line = (
            f'{peer} "{request.method} {redacted(request.path_qs)}" '
            f"{response.status} {response.body_length}B {time * 1000:.0f}ms"
        )
        self.logger.log(logging.DEBUG if peer == "socket" else logging.INFO, line)
