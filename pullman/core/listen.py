"""``--listen HOST:PORT`` and ``--allow CIDR``: parsing, and who may connect by default. Pure.

Default: ``127.0.0.1:11435``. A server on a loopback address lets only loopback clients in; one
on any other address (a LAN address, or ``0.0.0.0`` / ``::`` for every interface) lets in
loopback plus the private networks (RFC 1918, IPv6 unique-local and link-local), never the
whole internet, unless ``--allow`` says otherwise. Given ``--allow``, exactly those networks
(loopback is not added: say ``--allow 127.0.0.1/32`` to keep it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from pullman.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11435
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
PRIVATE: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
)


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        return f"{self.url_host}:{self.port}"

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT``, ``[v6]:PORT``, ``HOST`` (default port) or ``:PORT`` (default host)."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    host = host or DEFAULT_HOST
    if not port_text:
        port = DEFAULT_PORT
    elif port_text.isdigit() and 0 <= int(port_text) < 65536:  # 0: any free port
        port = int(port_text)
    else:
        raise UsageError(
            f"--listen {text!r}: {port_text!r} is not a port",
            hint="give HOST:PORT, e.g. 127.0.0.1:11435 or 192.168.1.10:11435",
        )
    if host != "localhost":
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise UsageError(
                f"--listen {text!r}: {host!r} is not an IP address",
                why="pullman serve listens on an address of this machine, named by number",
                hint="e.g. 127.0.0.1 (this machine only), 192.168.1.10 (that interface), 0.0.0.0",
            ) from None
    return Listen(host, port)


def parse_allow(values: Sequence[str]) -> tuple[Network, ...]:
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise UsageError(
                f"--allow {value!r} is not a network",
                hint="give an address or a CIDR, e.g. 192.168.1.0/24 or 10.0.0.7",
            ) from None
    return tuple(out)


def default_allow(listen: Listen) -> tuple[Network, ...]:
    nets = LOOPBACK if listen.loopback else (*LOOPBACK, *PRIVATE)
    return tuple(ipaddress.ip_network(n) for n in nets)


def allowed(address: str | None, networks: Sequence[Network]) -> bool:
    """Whether a peer address is in one of the networks (an IPv4-mapped IPv6 address counts
    as its IPv4 address); an unknown address is not."""
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)
