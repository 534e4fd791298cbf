"""A full disk: refused up front when it is known, and survived when it happens mid-download.

Uses a small real filesystem (tmpfs) mounted by the test; skipped when the test may not mount.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullman.errors import DiskFull
from pullman.testing import Simulator, make_data
from pullman.transfer.engine import Transfer

from helpers import MiB, fast_config, pullman, run_transfer, spec_for


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_known_shortage_is_refused_before_downloading(
    sim: Simulator, tmp_path: Path, small_fs: Path
) -> None:
    f = sim.add_file("big.bin", make_data(12 * MiB, 1))
    r = pullman("get", sim.url("big.bin"), "-o", str(small_fs / "big.bin"), home=tmp_path)
    assert r.returncode == 5, r.stderr
    assert "not enough free space" in r.stderr and "is free" in r.stderr
    assert "Traceback" not in r.stderr
    assert f.bytes_sent <= 1  # only the one-byte probe
    assert not (small_fs / "big.bin").exists()


class NoPrecheck(Transfer):
    """Space that vanishes after the check (another program fills the disk)."""

    def _check_space(self, remaining: int) -> None:
        return None


def test_disk_full_mid_download_keeps_progress_and_resumes(
    sim: Simulator, tmp_path: Path, small_fs: Path
) -> None:
    f = sim.add_file("m.bin", make_data(6 * MiB, 2))
    filler = small_fs / "filler"
    filler.write_bytes(b"\0" * (4 * MiB))
    spec = spec_for(sim.url("m.bin"), tmp_path, f.data, dest=small_fs / "m.bin")
    staging = small_fs / ".staging"
    transfer = NoPrecheck(spec, staging, fast_config())
    import anyio

    with pytest.raises(DiskFull) as info:
        anyio.run(transfer.run)
    assert "already fetched are kept" in info.value.what
    assert info.value.needed > 0 and info.value.free < MiB
    assert not spec.dest.exists()
    kept = transfer.statistics().done
    assert kept > 0
    filler.unlink()
    outcome, _ = run_transfer(spec, tmp_path, fast_config(), staging_dir=staging)
    assert spec.dest.read_bytes() == f.data
    assert outcome.resumed > 0 and outcome.discarded == 0
