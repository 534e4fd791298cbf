"""Exit codes: one table (pullman.errors), and a bug is never mistaken for a network problem."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from pullman.cli import cli, main
from pullman.errors import (
    EXIT_CODES,
    EXIT_SOFTWARE,
    InternalError,
    NetworkError,
    UsageError,
    exit_code_for,
)
from pullman.net.errors import translate, translated


@pytest.fixture
def boom() -> Iterator[None]:
    """A command with a bug in it, registered for one test."""

    @cli.command("boom-for-test", hidden=True)
    def boom_command() -> None:
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    try:
        yield
    finally:
        cli.commands.pop("boom-for-test", None)


def test_an_internal_error_exits_70_without_a_traceback(
    boom: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["boom-for-test"])
    assert info.value.code == EXIT_SOFTWARE == 70
    err = capsys.readouterr().err
    assert "internal error: TypeError" in err and "--debug" in err
    assert "Traceback" not in err


def test_our_errors_keep_their_codes_and_bugs_are_70() -> None:
    assert exit_code_for(UsageError("x")) == 2
    assert exit_code_for(NetworkError("x")) == 1
    assert exit_code_for(InternalError("x")) == 70
    assert exit_code_for(TypeError("x")) == 70
    assert 70 in EXIT_CODES  # documented in `pullman --help`


def test_translate_refuses_what_is_not_an_http_client_error() -> None:
    bug = TypeError("a bug")
    with pytest.raises(TypeError):
        translate(bug, "https://h/x")
    with pytest.raises(KeyError), translated("https://h/x"):
        raise KeyError("another bug")


def test_help_lists_exit_code_70() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "70  internal error" in result.output


def leaf_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += leaf_commands(command, f"{prefix}{name} ")
        elif not command.hidden:
            out.append((prefix + name, command))
    return out


def test_every_command_speaks_json_for_scripts() -> None:
    lacking = [
        name
        for name, command in leaf_commands(cli)
        if name != "daemon" and not any("--json" in p.opts for p in command.params)
    ]
    assert lacking == []  # `daemon` runs for ever and logs; everything else has --json
