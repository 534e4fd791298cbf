"""huggingface_hub reads some settings at import time: set them before anything imports it.

``chaoslib/__init__.py`` imports this module before any other, so every run of the harness (the
soak's in-process sessions, the tests that load it) sees them.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.pop("HF_HUB_OFFLINE", None)
