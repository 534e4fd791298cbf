"""Which proxy a request goes through: ``[network] proxy`` first, then the environment, as curl,
httpx and huggingface_hub read it. Pure: the environment is passed in.

- ``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http, ``ALL_PROXY`` for either when the
  scheme's own is unset; lowercase names win over uppercase ones (as in urllib and httpx).
  A proxy without a scheme is ``http://``; ``socks5://`` and ``socks5h://`` are SOCKS proxies.
- ``NO_PROXY`` (or ``[network] no_proxy``): comma-separated; ``*`` means never; ``host`` matches
  it and its subdomains, ``.host`` only subdomains, ``host:port`` that port only; IP addresses
  and CIDR ranges (``10.0.0.0/8``, ``::1``) match addresses.
- ``[network] proxy = "none"`` (or ``"direct"``) ignores proxy variables altogether.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pullman.errors import UsageError

DIRECT = ("", "none", "direct", "off")
SCHEMES = ("http", "https", "socks5", "socks5h")


def _env(env: Mapping[str, str], name: str) -> str:
    """``name`` from the environment, the lowercase spelling winning (urllib, httpx)."""
    return env.get(name.lower()) or env.get(name.upper()) or ""


def _normal(proxy: str, origin: str) -> str:
    value = proxy.strip()
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise UsageError(
            f"{origin}: {shown(value)!r} is not a proxy URL pullman can use",
            hint="write http://host:port (or https://, socks5://, socks5h://)",
        )
    return value


@dataclass(frozen=True)
class Proxies:
    """The proxy for each scheme, and the hosts that bypass them."""

    http: str | None = None
    https: str | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        proxy: str | None = None,
        no_proxy: str | None = None,
    ) -> Proxies:
        """``proxy`` / ``no_proxy``: the configured values (``[network]``), over the env."""
        bypass = no_proxy if no_proxy is not None else _env(env, "no_proxy")
        skip = tuple(h.strip().lower() for h in bypass.split(",") if h.strip())
        if proxy is not None:
            if proxy.strip().lower() in DIRECT:
                return cls(no_proxy=skip)
            chosen = _normal(proxy, "[network] proxy")
            return cls(chosen, chosen, skip)
        every = _env(env, "all_proxy")
        http = _env(env, "http_proxy") or every
        https = _env(env, "https_proxy") or every
        return cls(
            _normal(http, "HTTP_PROXY") if http else None,
            _normal(https, "HTTPS_PROXY") if https else None,
            skip,
        )

    def for_url(self, url: str) -> str | None:
        """The proxy URL to use for ``url``, or None to connect directly."""
        parts = urlsplit(url)
        proxy = self.https if parts.scheme.lower() == "https" else self.http
        if proxy is None or self.bypassed(parts.hostname or "", parts.port):
            return None
        return proxy

    def bypassed(self, host: str, port: int | None) -> bool:
        host = host.lower().strip("[]")
        return any(_matches(entry, host, port) for entry in self.no_proxy)


def _matches(entry: str, host: str, port: int | None) -> bool:
    if entry == "*":
        return True
    entry_host, entry_port = _split_port(entry)
    if entry_port is not None and entry_port != port:
        return False
    try:
        network = ipaddress.ip_network(entry_host, strict=False)
    except ValueError:
        network = None
    if network is not None:
        try:
            return ipaddress.ip_address(host) in network
        except ValueError:
            return False
    if entry_host.startswith("."):
        return host.endswith(entry_host)
    return host == entry_host or host.endswith("." + entry_host)


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port`` or a bare host / address / CIDR range."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def shown(proxy: str) -> str:
    """A proxy URL fit for messages and logs: its credentials left out."""
    parts = urlsplit(proxy)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{netloc}"
