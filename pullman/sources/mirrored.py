"""A ref resolved through its mirrors first (:mod:`pullman.core.mirrors`), then upstream.

Each mirror is asked in order with no credential of the upstream (the Hub's token, a
registry's) and only the mirror token, if one is configured. A miss (404), a refusal or a
failure moves on to the next mirror, then to the ref's own registry or Hub. The release keeps
the ref's own identity (the model's name, the repo and commit), so what lands in a store is
named as if it came from upstream.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pullman.core.mirrors import mirrors_for
from pullman.core.plan import Release
from pullman.core.refs import Ref
from pullman.errors import NetworkError, RemoteError
from pullman.sources import Source, SourceContext

log = logging.getLogger("pullman.mirrors")


async def resolve(
    source: Source, ref: Ref, ctx: SourceContext, *, mirrored: bool = True
) -> tuple[Release, str | None]:
    """The release, and the mirror it came from (None: upstream)."""
    bases = mirrors_for(ctx.options.mirrors, ref) if mirrored else []
    for n, base in enumerate(bases):
        try:
            release = await source.resolve(ref, replace(ctx, mirror=base, token=None))
        except (RemoteError, NetworkError) as exc:
            then = "the next mirror" if n + 1 < len(bases) else "upstream"
            log.warning("%s: the mirror %s: %s; trying %s", ref, base, exc.what, then)
            continue
        log.info("%s: from the mirror %s", ref, base)
        return release, base
    return await source.resolve(ref, ctx), None
