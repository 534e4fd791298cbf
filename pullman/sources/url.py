"""Plain URLs: one file, its name from the URL, its digest only if the user gave one."""

from __future__ import annotations

from pullman.core.jobs import GetOptions
from pullman.core.plan import Release, RemoteFile, Store
from pullman.core.refs import Ref, UrlRef
from pullman.core.urls import redact
from pullman.sources import SourceContext


class UrlSource:
    name = "url"
    options = frozenset({"out", "digest"})

    def pinned(self, options: GetOptions) -> GetOptions:
        return options

    def store(self, ref: Ref, options: GetOptions) -> Store:
        return Store.PLAIN

    async def resolve(self, ref: Ref, ctx: SourceContext) -> Release:
        assert isinstance(ref, UrlRef)
        options = ctx.options
        file = RemoteFile(
            url=ref.url,
            path=ref.filename,
            name=ref.filename,
            digest=options.digest,
            insecure=options.insecure,
        )
        return Release(ref=ref.url, title=ref.filename, display=redact(ref.url), files=(file,))
