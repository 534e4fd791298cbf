"""Verified TLS against a local HTTPS server whose CA is only in ``SSL_CERT_FILE``.

The server listens on this machine's own non-loopback address: pullman verifies certificates
for every host but loopback ones (and ``--insecure``), so this is verification for real.
"""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullman.testing import Simulator, make_data

from helpers import MiB, cli_env, local_address, make_test_ca, pullman

ADDRESS = local_address()
pytestmark = [
    pytest.mark.skipif(ADDRESS is None, reason="this machine has no non-loopback IPv4 address"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


@pytest.fixture
def tls_sim(tmp_path: Path) -> Iterator[tuple[Simulator, Path]]:
    assert ADDRESS is not None
    ca, cert, key = make_test_ca(tmp_path / "pki", ADDRESS)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with Simulator(host=ADDRESS, tls=context) as sim:
        yield sim, ca


def test_a_verified_download_from_a_server_whose_ca_is_in_ssl_cert_file(
    tls_sim: tuple[Simulator, Path], tmp_path: Path
) -> None:
    sim, ca = tls_sim
    data = make_data(2 * MiB + 3, 1)
    sim.add_file("m.bin", data, via_cdn=True)
    assert sim.url("m.bin").startswith(f"https://{ADDRESS}:")
    out = tmp_path / "m.bin"
    env = cli_env(tmp_path / "home", SSL_CERT_FILE=str(ca))
    r = pullman("get", sim.url("m.bin"), "-o", str(out), "--json", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data


def test_without_the_ca_the_certificate_is_refused(
    tls_sim: tuple[Simulator, Path], tmp_path: Path
) -> None:
    sim, _ = tls_sim
    sim.add_file("m.bin", make_data(64 * 1024, 2))
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "m.bin"), home=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "TLS failure" in r.stderr and "CERTIFICATE_VERIFY_FAILED" in r.stderr
    assert not (tmp_path / "m.bin").exists()


@pytest.mark.parametrize("name", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_a_ca_setting_that_names_nothing_is_a_usage_error(
    tls_sim: tuple[Simulator, Path], tmp_path: Path, name: str
) -> None:
    sim, _ = tls_sim
    sim.add_file("m.bin", make_data(64 * 1024, 3))
    missing = tmp_path / "no-such-ca.pem"
    env = cli_env(tmp_path / "home", **{name: str(missing)})
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "m.bin"), home=tmp_path, env=env)
    assert r.returncode == 2, r.stderr
    assert f"{name} names {missing}" in r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
