"""What the bench runs: server profiles, the cases built on them, and the contenders' names.

A *profile* is how the bytes are served (an nginx ``location`` with its own ``limit_rate_after``
/ ``limit_rate``, or a file in pullman's simulator). A *case* is a profile, a file size and a way
for pullman to reach the bytes (``url``: the file's URL; ``hub``: ``hf://`` through the Hub
simulator, whose LFS redirect points at nginx; ``ollama``: a model in the simulator's Ollama
registry, whose blob redirect points at nginx). The other contenders always fetch the served
bytes directly (the blob or LFS file "alone").
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Profile:
    name: str
    server: str
    """``nginx`` or ``sim`` (pullman's simulator, in a subprocess)."""
    summary: str
    directives: tuple[str, ...] = ()
    """nginx: the directives of this profile's ``location`` block."""
    sim: str = ""
    """sim: the Python that shapes the file (shown in the report)."""


# The decaying profile: nginx fixes a request's rate when the request starts, so it cannot slow
# a response down as it goes. The approximation: a connection's first request gets a 16 MiB
# burst, then 4 MiB/s for the rest of that request; every later request on the same keep-alive
# connection gets no burst and a rate that falls with the connection's age ($connection_time,
# nginx >= 1.19.10) when the request starts. A client that reuses one connection sees a
# staircase 4 -> 2 -> 1 -> 0.5 -> 0.25 MiB/s; a single long request only sees burst -> 4 MiB/s.
# "decay-sim" is the continuous version (the rate halves every 10 s within a response), served
# by pullman's simulator.
DECAY_MAPS = r"""map $connection_requests $decay_after {
    1        16m;
    default  0;
}
map $connection_time $decay_rate {
    "~^[01]\."    4m;
    "~^[2-4]\."   2m;
    "~^[5-9]\."   1m;
    "~^1[0-9]\."  512k;
    default       256k;
}"""

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile("unthrottled", "nginx", "nginx at full speed (sendfile)"),
        Profile(
            "burst",
            "nginx",
            "24 MiB per request at full speed, then 3 MiB/s",
            ("limit_rate_after 24m;", "limit_rate 3m;"),
        ),
        Profile(
            "crawl",
            "nginx",
            "4 MiB per request at full speed, then 512 KiB/s",
            ("limit_rate_after 4m;", "limit_rate 512k;"),
        ),
        Profile(
            "decay",
            "nginx",
            "first request on a connection: 16 MiB fast, then 4 MiB/s; later requests on it: "
            "no burst, 4/2/1/0.5/0.25 MiB/s by the connection's age (<2/<5/<10/<20/>=20 s)",
            ("limit_rate_after $decay_after;", "limit_rate $decay_rate;"),
        ),
        Profile(
            "decay-sim",
            "sim",
            "per connection: 16 MiB fast, then 4 MiB/s halving every 10 s of the connection's "
            "life, down to 1 MiB/s (simulator)",
            sim="Throttle(burst=16 MiB, rate=4 MiB/s, per='connection', decay=10.0, floor=1 MiB/s)",
        ),
        Profile(
            "aggregate",
            "sim",
            "all connections together capped at 8 MiB/s (an aggregate per-client cap, as some "
            "CDNs and ISPs shape a subscriber; simulator)",
            sim="Throttle(cap=ClientCap(rate=8 MiB/s)): one cap shared by every connection",
        ),
        Profile(
            "lossy",
            "sim",
            "full speed, but ~43 % of responses are cut by a TCP reset after 1, 4 or 16 MiB "
            "(simulator)",
            sim="[Reset(after=1 MiB, chance=0.10, seed=S), Reset(after=4 MiB, chance=0.15, "
            "seed=S+1), Reset(after=16 MiB, chance=0.25, seed=S+2)]; the first that hits wins; "
            "the seeds are re-armed before every run so each contender meets the same dice",
        ),
    ]
}

SCALE_SIZE = 16 * GiB
"""Issue 17's goal 4 asks for 100 GiB "or 16 GiB where disk is short": the copy is real, and
this machine's disk has 53-80 GB free."""

AGGREGATE_CAP = 8 * MiB
"""The ``aggregate`` profile's cap, bytes/s for all connections together."""

# Contenders (see contenders.py for the exact commands).
CONTENDERS = (
    "pullman",
    "pullman-ref",
    "pullman-c16",
    "aria2c-x16",
    "aria2c-x16-nocheck",
    "aria2c-k1m",
    "aria2c",
    "curl",
    "curl-sync",
    "seed",
    "hf_hub_download",
    "curl-sha",
    "openssl",
)
"""``pullman-ref`` is pullman on the very same bytes from the same server, unthrottled (its
"own unthrottled time", issue 17's goal 2); ``curl-sync`` is ``curl -o FILE && sync FILE``."""

_URL_SET = ("pullman", "pullman-ref", "aria2c-x16", "aria2c", "curl", "seed")


@dataclass(frozen=True)
class Case:
    name: str
    profile: str
    via: str
    """How pullman (and hf_hub_download) reach the bytes: ``url``, ``hub`` or ``ollama``."""
    full_size: int
    quick_size: int
    contenders: tuple[str, ...]
    title: str
    traced: bool = False
    """Sample every run's received bytes over time (for the throughput plot)."""
    cap: int = 0
    """An aggregate per-client cap in bytes/s (all connections together), if the profile has one."""


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case(
            "unthrottled",
            "unthrottled",
            "url",
            GiB,
            64 * MiB,
            (
                "pullman",
                "pullman-c16",
                "aria2c-x16",
                "aria2c-x16-nocheck",
                "aria2c",
                "curl",
                "curl-sync",
                "seed",
                "curl-sha",
                "openssl",
            ),
            "a URL on nginx, unthrottled",
        ),
        Case(
            "burst",
            "burst",
            "url",
            GiB,
            48 * MiB,
            (
                "pullman",
                "pullman-ref",
                "pullman-c16",
                "aria2c-x16",
                "aria2c-x16-nocheck",
                "aria2c",
                "curl",
                "seed",
            ),
            "a URL on nginx, burst then 3 MiB/s",
        ),
        Case(
            "burst-hub",
            "burst",
            "hub",
            64 * MiB,
            32 * MiB,
            ("pullman", "hf_hub_download", "aria2c-x16", "curl"),
            "an LFS file through the Hub simulator, bytes from nginx (burst)",
        ),
        Case(
            "crawl-ollama",
            "crawl",
            "ollama",
            192 * MiB,
            8 * MiB,
            (
                "pullman",
                "pullman-ref",
                "aria2c-k1m",
                "aria2c-x16-nocheck",
                "aria2c-x16",
                "aria2c",
                "curl",
                "seed",
            ),
            "a model through the Ollama registry simulator, blob bytes from nginx (crawl)",
            traced=True,
        ),
        Case(
            "decay",
            "decay",
            "url",
            256 * MiB,
            24 * MiB,
            _URL_SET,
            "a URL on nginx, decaying staircase",
        ),
        Case(
            "decay-sim",
            "decay-sim",
            "url",
            256 * MiB,
            24 * MiB,
            _URL_SET,
            "a URL on the simulator, continuous decay",
        ),
        Case(
            "aggregate",
            "aggregate",
            "url",
            192 * MiB,
            32 * MiB,
            ("pullman", "aria2c-x16", "curl"),
            "a URL on the simulator, an aggregate per-client cap",
            cap=AGGREGATE_CAP,
        ),
        Case(
            "lossy",
            "lossy",
            "url",
            256 * MiB,
            32 * MiB,
            _URL_SET,
            "a URL on the simulator, connections reset at random",
        ),
    ]
}


def parse_size(text: str) -> int:
    """``64MiB``, ``1GiB``, ``512k``, ``1048576`` (binary units; ``MB`` means MiB here too)."""
    s = text.strip().lower().replace(" ", "")
    units = {
        "": 1,
        "b": 1,
        "k": KiB,
        "kb": KiB,
        "kib": KiB,
        "m": MiB,
        "mb": MiB,
        "mib": MiB,
        "g": GiB,
        "gb": GiB,
        "gib": GiB,
    }
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num) :]
    if unit not in units or not num:
        raise ValueError(f"bad size {text!r} (e.g. 64MiB, 1GiB)")
    value = float(num) * units[unit]
    if value < 1:
        raise ValueError(f"size {text!r} is too small")
    return int(value)


def human_size(n: float) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{int(n)} B"
