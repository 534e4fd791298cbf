"""The flags of ``pullman get``, as one decorator (``get_options``), documented for ``--help``.

Names follow ``ollama pull`` and ``hf download`` where they exist (``--insecure``,
``--local-dir``, ``--include``, ``--revision``, ``--cache-dir``, ``--token``, ``--dry-run``,
``-q``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from pullman.cli.app import JSON, LMSTUDIO_DIR, OLLAMA_DIR

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.argument("refs", nargs=-1, required=True),
    click.option("--sha256", "sha256", metavar="HEX", help="Expected sha256 of a URL's file."),
    click.option(
        "-o",
        "--output",
        metavar="PATH",
        help="Where a URL's file goes (a file path, or a directory ending in /).",
    ),
    click.option(
        "--to",
        multiple=True,
        metavar="APP|DIR",
        help="Where it lands: hf, ollama, lmstudio or a directory (repeatable; one copy "
        "on disk, linked into each). Default: the ref's own store.",
    ),
    click.option(
        "--mirror",
        multiple=True,
        metavar="URL|HOST=URL",
        help="Ask this mirror first (pullman serve on another box, a registry); the upstream on "
        "a miss, a failure or a bad digest. Default: [sources] mirrors. Repeatable.",
    ),
    click.option("--no-mirror", is_flag=True, help="Ignore [sources] mirrors for this run."),
    OLLAMA_DIR,
    LMSTUDIO_DIR,
    click.option(
        "--include",
        multiple=True,
        metavar="GLOB",
        help="Hugging Face: only files matching GLOB (repeatable).",
    ),
    click.option(
        "--exclude", multiple=True, metavar="GLOB", help="Hugging Face: skip files matching GLOB."
    ),
    click.option(
        "--local-dir",
        metavar="DIR",
        help="Hugging Face: plain files in DIR instead of the HF cache (like hf download).",
    ),
    click.option(
        "-c",
        "--connections",
        type=click.IntRange(1, 64),
        help="Connections at once (default 8, or [transfer] connections).",
    ),
    click.option(
        "--force", is_flag=True, help="Download again even if the files are already there."
    ),
    click.option(
        "--verify-existing", is_flag=True, help="Re-hash blobs already in the store before reusing."
    ),
    click.option(
        "--insecure", is_flag=True, help="Allow http:// registries (like `ollama pull --insecure`)."
    ),
    click.option(
        "--via-server",
        is_flag=True,
        help="Let the running Ollama server download the model, recycling its pull stream.",
    ),
    click.option(
        "--recycle-after",
        type=click.FloatRange(min=1.0),
        default=120.0,
        show_default=True,
        metavar="SECONDS",
        help="With --via-server: stop and restart the server's pull after this long.",
    ),
    click.option(
        "--detach", is_flag=True, help="Queue the jobs for the daemon and return at once."
    ),
    click.option(
        "--priority",
        type=int,
        default=0,
        show_default=True,
        help="Higher runs first (FIFO within).",
    ),
    click.option("--window", metavar="HH:MM-HH:MM", help="Only download inside this daily window."),
    click.option(
        "--until", metavar="HH:MM", help="Stop cleanly at this time (exit 75); rerun to resume."
    ),
    click.option("--limit", metavar="RATE", help="Bandwidth cap for this job, e.g. 20MB/s."),
    click.option(
        "--on-done",
        metavar="CMD",
        help="Run CMD when the job is done (PULLMAN_JOB, PULLMAN_REF, PULLMAN_STATE, PULLMAN_PATH "
        "in its environment; no shell unless CMD is `sh -c '...'`). Default: [hooks] on_done.",
    ),
    click.option(
        "--on-failed",
        metavar="CMD",
        help="Run CMD when the job fails (as --on-done; PULLMAN_ERROR too). "
        "Default: [hooks] on_failed.",
    ),
    click.option(
        "--notify",
        is_flag=True,
        help="A desktop notification when the job ends (notify-send, osascript), if available.",
    ),
    JSON,
    click.option(
        "--progress",
        type=click.Choice(["auto", "bar", "plain", "json", "none"]),
        default="auto",
        show_default=True,
        help="Progress display: bars on a terminal, plain lines otherwise; json: one event "
        "per line on stderr (the fields the Python API's progress callback gets).",
    ),
    click.option(
        "--revision", metavar="REV", help="Hugging Face: a branch, tag or commit (over @rev)."
    ),
    click.option(
        "--cache-dir",
        metavar="DIR",
        help="Hugging Face: the cache (default: $HF_HUB_CACHE, else $HF_HOME/hub).",
    ),
    click.option(
        "--token",
        "token_file",
        is_flag=False,
        flag_value="-",
        default=None,
        metavar="[FILE]",
        help="Hugging Face: a token from FILE, or asked for; never stored or logged.",
    ),
    click.option(
        "--ignore-fit",
        is_flag=True,
        help="Download a GGUF model even when it would not fit the memory budget.",
    ),
    click.option(
        "--memory",
        metavar="SIZE",
        help="The memory budget of the machine the model is for, e.g. 16GiB (default: this one).",
    ),
    click.option(
        "--context",
        "context_length",
        type=click.IntRange(1, 1 << 24),
        metavar="N",
        help="Context length the fit check counts the KV cache for (default 4096).",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Show what would be fetched and where it lands; fetch nothing.",
    ),
    click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="No progress or summary: only the local path(s) on stdout.",
    ),
]


def get_options(fn: F) -> F:
    """Apply every flag of ``pullman get`` (in ``--help`` order)."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn
