"""The ``pullman`` command group, its context, error handling and running async work.

The group puts one :class:`Context` in ``ctx.obj``: the settings (loaded once, on first use) and
the index (opened once, closed when the command ends). Commands only parse and print; each runs
its async work on one event loop (:func:`run_async`). Every error pullman raises on purpose is
printed as what / why / fix, with the exit code of its family (:mod:`pullman.errors`); anything
else is a bug: exit 70, no traceback unless ``--debug``.
"""

from __future__ import annotations

import importlib
import json
import logging
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click

from pullman import __version__, config
from pullman.errors import EXIT_CODES, EXIT_SOFTWARE, Interrupted, PullmanError, collapse_groups
from pullman.tuning import freeze_startup, tune_process

if TYPE_CHECKING:
    from pullman.index import Index

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("pullman")

_EPILOG = "Exit codes:\n\n" + "\n\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


class Context:
    """What every command shares: settings, loaded once, and the index, opened once."""

    def __init__(self, *, debug: bool = False, verbose: int = 0) -> None:
        self.debug = debug
        self.verbose = verbose
        self._settings: config.Settings | None = None
        self._index: Index | None = None

    @property
    def settings(self) -> config.Settings:
        if self._settings is None:
            self._settings = config.load()
        return self._settings

    @property
    def index(self) -> Index:
        if self._index is None:
            from pullman.cli.follow import open_index

            self._index = open_index(self.settings.paths)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            index, self._index = self._index, None
            index.close()


pass_context = click.make_pass_decorator(Context)

COMMANDS: dict[str, str] = {
    "cancel": "jobs",
    "daemon": "admin",
    "doctor": "store",
    "export": "bundle",
    "fit": "fit_cmd",
    "gc": "store",
    "get": "get_cmd",
    "import": "bundle",
    "limit": "jobs",
    "link": "link_cmd",
    "ls": "store",
    "pause": "jobs",
    "priority": "jobs",
    "push": "push_cmd",
    "resume": "jobs",
    "rm": "store",
    "serve": "serve_cmd",
    "service": "admin",
    "status": "jobs",
    "verify": "store",
    "web": "web",
}
"""Each command and the module of :mod:`pullman.cli` that defines it (and registers it on
import). ``tests/test_cli_lazy.py`` checks this table against what the modules register."""


class LazyGroup(click.Group):
    """Imports a command's module when that command is asked for: ``pullman get`` starts
    without paying for the HTTP server behind ``serve``, the bundle tools or the GGUF reader
    (together more than half a second of imports)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"pullman.cli.{module}")
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG
)
@click.version_option(__version__, prog_name="pullman")
@click.option("-v", "--verbose", count=True, help="More log lines (repeat for debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """pullman: resilient, resumable, verified downloads of model weights."""
    ctx.obj = Context(debug=debug, verbose=verbose)
    ctx.call_on_close(ctx.obj.close)
    level = logging.DEBUG if verbose > 1 or debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="pullman: %(message)s", stream=sys.stderr)
    # The HTTP libraries log full URLs, and presigned CDN URLs carry credentials in their query
    # strings: they stay quiet whatever the verbosity (pullman logs redacted URLs itself).
    for name in ("httpx2", "httpcore2", "httpx", "httpcore", "huggingface_hub", "hpack"):
        logging.getLogger(name).setLevel(logging.WARNING)


OLLAMA_DIR = click.option(
    "--ollama-dir",
    metavar="DIR",
    help="Ollama models directory (default: $OLLAMA_MODELS, else ~/.ollama/models).",
)
LMSTUDIO_DIR = click.option(
    "--lmstudio-dir",
    metavar="DIR",
    help="LM Studio's models directory (default: [stores] lmstudio, else LM Studio's home's).",
)
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")


def STORE_DIRS(fn: F) -> F:
    """``--ollama-dir`` and ``--lmstudio-dir``: the stores a store command looks at."""
    return OLLAMA_DIR(LMSTUDIO_DIR(fn))


def echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2))


# ---------------------------------------------------------------------------- running


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` on an event loop; SIGINT / SIGTERM stop it cleanly (progress is kept)."""

    async def main() -> T:
        result: list[T] = []
        stopped: list[int] = []
        with collapse_groups():
            await group(result, stopped)
        if stopped:
            name = signal.Signals(stopped[0]).name
            raise Interrupted(
                f"stopped by {name}; progress is saved",
                hint="run the same command again to resume",
            )
        return result[0]

    async def group(result: list[T], stopped: list[int]) -> None:
        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        stopped.append(signum)
                        tg.cancel_scope.cancel()
                        return

            async def work() -> None:
                result.append(await fn())
                tg.cancel_scope.cancel()

            tg.start_soon(watch_signals)
            tg.start_soon(work)

    freeze_startup()
    return anyio.run(main)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: exit codes come from :mod:`pullman.errors`, in this one place."""
    tune_process()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("pullman: aborted", err=True)
        sys.exit(Interrupted.exit_code)
    except PullmanError as exc:
        click.echo(f"pullman: error: {exc.explain()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("pullman: interrupted; progress is saved, run again to resume", err=True)
        sys.exit(Interrupted.exit_code)
    except Exception as exc:  # a bug: exit 70, so a retry loop in cron never spins on it
        if debug:
            traceback.print_exc()
        click.echo(f"pullman: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  fix: rerun with --debug for details, and please report it", err=True)
        sys.exit(EXIT_SOFTWARE)
    sys.exit(0)
