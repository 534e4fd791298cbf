"""pullman's chaos harness: seeded fault soaks, crash loops and a many-jobs run.

Entry point: ``scripts/chaos`` (see ``scripts/chaos --help``). Subcommands:

- ``soak``: hundreds of seeded runs against the simulator. Each run picks a target (a plain
  URL, an Ollama model, a Hugging Face repo), a random engine configuration and a random mix of
  every fault the simulator can script, runs pullman in-process (:class:`pullman.session.Session`),
  and then checks every final path against the bytes the simulator serves. A run that failed
  is run once more with the faults removed ("heal"): the progress kept must let it finish.
  Runs execute in worker processes; the parent kills a worker whose run outlives its deadline
  (a hang, reported with its seed). ``--only-seed N`` replays one run, verbosely.
- ``crashloop``: SIGKILL the foreground CLI and the daemon at random points across a
  multi-layer Ollama pull, checking every journal after every kill; reports refetched bytes.
- ``many``: N small files queued with ``get --detach`` and run by the daemon; checks the
  connection budget and reports the daemon's peak RSS.

Everything is on 127.0.0.1; nothing here touches the network.

Invariants checked after every run (a violation is a *corrupt commit* and fails the soak):

- URL: the destination, if it exists, holds exactly the served bytes (runs without a digest
  never script FlipByte: without a digest pullman documents that it cannot notice one).
- Ollama: every ``blobs/sha256-<hex>`` hashes to its name and is a blob of the model; the
  manifest exists only if every blob it names is there and right, and is the registry's bytes.
- HF cache: every blob hashes to its name; every snapshot entry is a relative link to a right
  blob holding the served bytes of that path; ``refs/main`` only once every link is there.
- HF ``--local-dir``: every file there holds the served bytes of its path.
- No final path is a symlink out of its store; the CDN never sees an ``Authorization`` header.
"""

# Modules, one concept each: ``common`` (sizes, digests, the environment, the ``pullman``
# command), ``settings`` (the fast engine settings, randomised, and the CLI's environment),
# ``faults`` (random fault mixes, sizes and throttles), ``checks`` (the store invariants above),
# ``scenarios`` (a URL, Ollama or HF target with its faults), ``runs`` (one seeded run and its
# heal), ``workers`` (runs in worker processes), ``soak``, ``crashloop``, ``many`` (the three
# commands) and ``cli`` (the argument parser; ``python scripts/chaoslib`` runs it).

from __future__ import annotations

from chaoslib import _hubenv  # noqa: F401  (first: huggingface_hub reads it at import time)
from chaoslib.checks import (
    check_hf_cache,
    check_journals,
    check_local_dir,
    check_ollama,
    check_plain,
)
from chaoslib.cli import main
from chaoslib.common import KiB, MiB, environ, git_sha1, run_cli, sha256_hex, wait_for
from chaoslib.crashloop import run_crashloop
from chaoslib.faults import describe_fault, make_faults, random_size, random_throttle
from chaoslib.many import run_many
from chaoslib.runs import RUN_TIMEOUT, run_seed
from chaoslib.scenarios import Scenario, build_hf, build_ollama, build_url
from chaoslib.settings import cli_env, fast_transfer_config
from chaoslib.soak import BAD, summarise, verdict
from chaoslib.workers import Worker, worker_main

__all__ = [
    "BAD",
    "RUN_TIMEOUT",
    "KiB",
    "MiB",
    "Scenario",
    "Worker",
    "build_hf",
    "build_ollama",
    "build_url",
    "check_hf_cache",
    "check_journals",
    "check_local_dir",
    "check_ollama",
    "check_plain",
    "cli_env",
    "describe_fault",
    "environ",
    "fast_transfer_config",
    "git_sha1",
    "main",
    "make_faults",
    "random_size",
    "random_throttle",
    "run_cli",
    "run_crashloop",
    "run_many",
    "run_seed",
    "sha256_hex",
    "summarise",
    "verdict",
    "wait_for",
    "worker_main",
]
