"""The daemon's HTTP API and dashboard (layer 3): served by ``pullman daemon`` on aiohttp.

Where: a Unix socket ``daemon.sock`` in the state directory (mode ``0600``; the CLI's channel to
the daemon, no token), and TCP with ``pullman daemon --listen HOST:PORT`` (loopback unless a LAN
address is named; a bearer token always; :mod:`pullman.api.auth`). The SQLite index stays the
source of truth: the API and the CLI are two views of it, sharing one implementation of the
rules (:mod:`pullman.jobcontrol`, :mod:`pullman.jobqueue`).

Versioning: the paths are ``/api/...``; ``GET /api/health`` and the ``hello`` event carry
``api_version`` (now 1). A change that breaks a client bumps it (and moves the old paths under
``/api/v1/``); fields are only ever added within a version.

Routes (JSON bodies and answers)::

    GET  /api/health                  {"ok", "api_version", "version", "listen",
                                       "jobs": {state: n}, "event_streams"}
    GET  /api/jobs                    {"jobs": [job...], "limit": bytes/s | null,
                                       "shown": "20 MB/s"}
    POST /api/jobs                    the options of `get --detach` (pullman.api.submit)  -> 201
                                      {"jobs": [{"id", "ref", "state": "queued"}]}
    GET  /api/jobs/{id}               {"job": job + {"files": [file...], "connections",
                                       "recycles", "retries", "waiting_because",
                                       "events": [event...]}}
    GET  /api/jobs/{id}/history       {"job_id", "fields": ["t", "rate", "done"],
                                       "samples": [[t, bytes/s, bytes done]...],
                                       "marks": [event...]}
    POST /api/jobs/{id}/pause|resume|cancel                  -> {"job": job}
    PUT  /api/jobs/{id}/priority      {"priority": 5}        -> {"job": job}
    GET  /api/limit                   {"limit": bytes/s | null, "shown": "unlimited"}
    PUT  /api/limit                   {"limit": "20MB/s" | 2e7 | "off" | null}  -> the same
    GET  /api/events                  text/event-stream (below)
    GET  /                            the dashboard (pullman/api/static/index.html)
    GET  /static/{name}               its assets (package data only)

A *job* is a row as ``pullman status --json`` prints it (``id``, ``ref``, ``options``,
``priority``, ``state``, ``wait_reason``, ``bytes_done``, ``bytes_total``, ``rate``, ``error``,
``created_at``, ``updated_at``, ``started_at``, ``finished_at``, ``pid``, ``exit_code``) plus
``progress`` (0..1 or null) and ``eta`` (seconds or null). An *event* is ``{"id", "job_id", "at",
"kind", "detail"}`` (kinds: started, resumed, waiting, paused, recycled, retried, verified,
done, failed, cancelled). A *file* is every field of
:class:`~pullman.transfer.stats.TransferStats` (``name``, ``state``, ``size``, ``done``,
``verified``, ``fetched``, ``resumed``, ``rate``, ``connections``, ``recycles``, ``retries``,
``steals``, ``refreshes``, ``note``) plus ``eta``: :meth:`TransferStats.to_json`.

Errors: ``{"error": {"what", "why", "hint", "status"}}`` with 400 (malformed JSON, a bad value),
401 (no valid token, TCP only), 403 (a state change without a matching ``Origin`` or
``X-Pullman-CSRF``), 404 (unknown job or route), 409 (a move the job's state does not allow;
also ``"current"``: its state), 503 (too many event streams, the index's disk failed); never a
traceback.

Server-sent events (``GET /api/events``); each is ``event: NAME`` and one ``data:`` line of
JSON; all but ``hello`` carry an increasing ``id:``; a ``: ping`` comment every 15 s::

    hello     {"api_version": 1, "jobs": [job...], "limit", "shown", "seq"}   first, on connect
    job       {"job": job, "from": "running" | null, "to": "paused"}  a new job (from null), a
              state change, a new wait reason or priority; within a second of the index change
    progress  {"job_id", "ref", "state", "done", "size", "rate", "eta", "connections",
               "recycles", "retries", "files": [file...], "at"}  about once a second per
              running job (when its progress row is written)
    limit     {"limit", "shown"}  the global cap changed

A client that cannot keep up (256 events queued) is disconnected; ``EventSource`` reconnects and
gets a fresh ``hello``. Throughput history (``/history``) is kept in the daemon's memory for
the 64 most recent jobs, at most 600 samples each (thinned evenly over the job's life).
"""
