"""The soak's worker processes: each reads seeds on stdin and answers one JSON result per line;
the parent kills (and replaces) a worker whose run outlives its deadline."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from chaoslib.common import PACKAGE
from chaoslib.runs import Result, run_seed

__all__ = ["Worker", "worker_main"]


def worker_main(base: Path, timeout: float, twins: bool = True) -> None:
    """Read seeds on stdin, write one JSON result per line on stdout."""
    logging.basicConfig(level=logging.CRITICAL)
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not break the protocol
    for line in sys.stdin:
        seed = int(line)
        result = run_seed(seed, base, timeout=timeout, twins=twins)
        out.write(json.dumps(result) + "\n")
        out.flush()


class Worker:
    """One worker process (``python scripts/chaoslib worker``), driven by the soak's parent."""

    def __init__(self, base: Path, timeout: float, log: Path, twins: bool = True) -> None:
        self.base, self.timeout, self.log, self.twins = base, timeout, log, twins
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._start()

    def _start(self) -> None:
        self._log: IO[bytes] = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(PACKAGE),
                "worker",
                "--base",
                str(self.base),
                "--timeout",
                str(self.timeout),
                *([] if self.twins else ["--no-twins"]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()

    @staticmethod
    def _read(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def run(self, seed: int, deadline: float) -> Result:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{seed}\n")
            self.proc.stdin.flush()
            line = self.lines.get(timeout=deadline)
        except queue.Empty:
            self.restart()
            return {"seed": seed, "killed": f"no result after {deadline:.0f} s (hang)"}
        except BrokenPipeError:
            line = None
        if line is None:
            self.restart()
            return {"seed": seed, "killed": "the worker died"}
        result: Result = json.loads(line)
        return result

    def restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()
