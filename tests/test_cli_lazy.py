"""The CLI imports a command's module only when that command is asked for, and its table of
commands matches what the modules register."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from pullman.cli import COMMANDS, cli, load_all


def test_the_table_names_every_command_and_only_those() -> None:
    load_all()
    registered = {name: cmd.callback.__module__ for name, cmd in cli.commands.items()}
    assert registered == {name: f"pullman.cli.{mod}" for name, mod in COMMANDS.items()}


def test_help_lists_every_command() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in COMMANDS:
        assert f"  {name} " in out or f"  {name}\n" in out, name


def test_get_does_not_import_the_server_or_the_gguf_reader() -> None:
    code = (
        "import sys\n"
        "from pullman.cli import cli\n"
        "cli.get_command(None, 'get')\n"
        "heavy = ('aiohttp', 'numpy', 'gguf', 'pullman.serve.app')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_command_line_keeps_trio_out_where_it_is_installed() -> None:
    """httpcore2 imports trio whenever it can (0.16 s); pullman's own process runs on asyncio
    and marks it absent. The Python API leaves the importer's modules alone."""
    code = (
        "import sys\n"
        "import pullman\n"
        "from pullman.tuning import tune_process\n"
        "api = 'trio' in sys.modules and sys.modules['trio'] is None\n"
        "tune_process()\n"
        "import httpcore2\n"
        "print(api, sys.modules.get('trio') is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
