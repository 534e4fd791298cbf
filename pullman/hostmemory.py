"""Per-host lessons (:class:`~pullman.core.hosts.HostLessons`) kept in the index's settings
table, keyed by origin (``host:https://cdn.example:443``). A hint, never a requirement: an
unreadable entry is ignored, and a failing index never fails a download."""

from __future__ import annotations

import logging

from pullman.core.hosts import HostLessons, host_key
from pullman.errors import PullmanError
from pullman.index import Index

log = logging.getLogger("pullman.hosts")


class IndexHostMemory:
    def __init__(self, index: Index) -> None:
        self._index = index

    def recall(self, url: str) -> HostLessons | None:
        try:
            text = self._index.get_setting(host_key(url))
        except PullmanError as exc:
            log.debug("could not read what %s taught: %s", host_key(url), exc)
            return None
        return HostLessons.from_json(text) if text is not None else None

    def learn(self, url: str, lessons: HostLessons) -> None:
        try:
            self._index.set_setting(host_key(url), None if lessons.empty else lessons.to_json())
        except PullmanError as exc:
            log.debug("could not record what %s taught: %s", host_key(url), exc)
