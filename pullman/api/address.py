"""``--listen HOST:PORT``: where the API's TCP listener binds. Pure parsing.

``8765`` and ``:8765`` mean loopback (127.0.0.1); a LAN address (or ``0.0.0.0``) is used only
when the user names it. IPv6 addresses go in brackets: ``[::1]:8765``.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from pullman.errors import UsageError

LOOPBACK = "127.0.0.1"


class Listen(NamedTuple):
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def url(self, port: int | None = None) -> str:
        """The address a browser on this machine uses (``0.0.0.0`` is reached at loopback)."""
        host = {"0.0.0.0": LOOPBACK, "::": "::1"}.get(self.host, self.host)  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port if port is not None else self.port}/"


def parse_listen(text: str) -> Listen:
    value = text.strip()
    host, port_text = LOOPBACK, value
    if value.startswith("["):
        inner, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise _bad(text)
        host, port_text = inner, rest[1:]
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        host = host or LOOPBACK
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535 or not host:
        raise _bad(text)
    return Listen(host, int(port_text))


def _bad(text: str) -> UsageError:
    return UsageError(
        f"--listen: {text!r} is not HOST:PORT",
        hint="for example 127.0.0.1:8765, :8765 (loopback), or 192.168.1.5:8765 for the LAN",
    )
