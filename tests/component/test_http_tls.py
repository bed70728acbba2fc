"""``http.tls``: ``http.listen`` over TLS with a certificate from files (made here by the
``openssl`` CLI, signed by a test CA), verified by a client that trusts only that CA; renewed
files are served from the next connection on; ``/status`` stays plain HTTP on loopback."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.component.test_http_api import get, http_config, started, url_of

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_pki(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signs for IP 127.0.0.1: (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / f"{name}-ca.crt", directory / f"{name}-ca.key"
    cert, key, csr = (directory / f"{name}.{ext}" for ext in ("crt", "key", "csr"))
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "1",
            "-subj", f"/CN={name} test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=cosmolet")
    extensions = directory / f"{name}.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "1", "-extfile", extensions)  # fmt: skip
    return ca, cert, key


def install(cert: Path, key: Path, target: Path) -> None:
    """Put a certificate and key where the agent reads them, each file swapped atomically."""
    for source, name in ((cert, "tls.crt"), (key, "tls.key")):
        shutil.copy(source, target / f"{name}.new")
        os.replace(target / f"{name}.new", target / name)


def get_tls(url: str, ca: Path) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return response.status, response.read().decode()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """The mounted Secret's directory, holding the first certificate."""
    directory = tmp_path / "secret"
    directory.mkdir()
    _, cert, key = make_pki(tmp_path / "pki", "first")
    install(cert, key, directory)
    return directory


def tls_config(secret: Path) -> dict[str, str]:
    return {"certFile": str(secret / "tls.crt"), "keyFile": str(secret / "tls.key")}


def test_served_over_tls_and_verified_with_the_ca(tmp_path: Path, secret: Path) -> None:
    ca = tmp_path / "pki/first-ca.crt"
    config = http_config(tls=tls_config(secret))
    with started(tmp_path, config) as (_, servers):
        url = url_of(servers.public, "https")
        assert get_tls(url + "/healthz", ca) == (200, "ok\n")
        assert get_tls(url + "/metrics", ca)[0] == 200
        # A client that does not trust the CA refuses the certificate.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get_tls(url + "/healthz", tmp_path / "pki/first.crt")
        # Plain HTTP on the TLS port gets nothing; the listener goes on serving TLS.
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            get(url_of(servers.public) + "/healthz")
        assert get_tls(url + "/healthz", ca)[0] == 200
        # /status: plain HTTP on its own loopback listener.
        assert get(url_of(servers.status) + "/status")[0] == 200


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path, secret: Path) -> None:
    first_ca = tmp_path / "pki/first-ca.crt"
    with started(tmp_path, http_config(tls=tls_config(secret))) as (_, servers):
        url = url_of(servers.public, "https") + "/healthz"
        assert get_tls(url, first_ca)[0] == 200
        second_ca, cert, key = make_pki(tmp_path / "pki", "second")
        install(cert, key, secret)
        assert get_tls(url, second_ca)[0] == 200
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get_tls(url, first_ca)
        # A broken renewal (a key that is not PEM) keeps the last good certificate.
        (secret / "tls.key").write_text("not a key\n")
        assert get_tls(url, second_ca)[0] == 200


def test_unreadable_tls_files_serve_nothing_on_http_listen(tmp_path: Path) -> None:
    missing = {"certFile": str(tmp_path / "no.crt"), "keyFile": str(tmp_path / "no.key")}
    with started(tmp_path, http_config(tls=missing)) as (_, servers):
        assert servers.public is None  # never plain HTTP where TLS was asked for
        assert get(url_of(servers.status) + "/status")[0] == 200
