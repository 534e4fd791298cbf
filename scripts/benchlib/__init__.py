"""pullman's benchmark harness against its peers (``scripts/bench``; see issue 6).

Modules: ``cases`` (profiles, cases, sizes), ``options`` (the options, the plan they resolve
to, the tools it needs), ``procs`` (measured subprocesses, process-tree cleanup, connection
sampling), ``nginx`` (generated config, start/stop, access log),
``simserver`` (pullman's simulator in a subprocess: lossy / decaying files, the Ollama registry
and the Hub whose data redirects go to nginx), ``contenders`` (the exact commands), ``machine``
(what the run ran on), ``runner`` (the servers and the rounds), ``report`` (medians, ratios,
Markdown), ``targets`` (the issue's targets) and ``cli`` (the driver).
"""
