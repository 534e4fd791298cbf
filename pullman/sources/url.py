"""Plain URLs: one file, the digest only if the user gave one."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pullman.digests import Digest
from pullman.layouts import plain
from pullman.plan import FileSpec, Plan
from pullman.refs import UrlRef


def plan_url(
    ref: UrlRef,
    *,
    out: str | None,
    downloads: Path,
    digest: Digest | None = None,
    insecure: bool = False,
) -> Plan:
    dest = plain.destination(out, ref.filename, downloads).absolute()
    key = "url-" + hashlib.sha256(f"{ref.url}\n{dest}".encode()).hexdigest()[:32]
    spec = FileSpec(
        url=ref.url,
        dest=dest,
        key=key,
        name=dest.name,
        digest=digest,
        insecure=insecure,
    )
    return Plan(
        ref=ref.url,
        files=(spec,),
        root=dest.parent,
        staging=plain.staging_dir(dest),
        title=dest.name,
        display=ref.url,
    )
