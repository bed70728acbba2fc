"""The lab API server's TLS material and bearer tokens, kept in one directory (``--tls-dir``).

A pod reaches the API server the in-cluster way: ``https://$KUBERNETES_SERVICE_HOST:PORT``, the
CA in ``ca.crt`` and a bearer token in ``token`` (the official clients' in-cluster loaders speak
HTTPS only). So the directory holds what a pod mounts at
``/var/run/secrets/kubernetes.io/serviceaccount`` (``ca.crt``, ``token``, ``namespace``, readable
by any uid, as the kubelet's projected files are) next to what only the server reads (the keys,
``admin-token``). Everything is reused when present and still valid, so a restarted server keeps
the CA and tokens a running pod already holds.

Certificates are made with the ``openssl`` command (Debian has it; the venv has no
``cryptography``): an EC P-256 CA, and a server certificate it signs for 127.0.0.1, ::1,
localhost and any extra names (``--tls-san``).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
TOKEN = "token"  # the service account's bearer token
NAMESPACE = "namespace"  # the service account's namespace, as a pod's mount has it
ADMIN_TOKEN = "admin-token"
BASE_SANS = ("127.0.0.1", "::1", "localhost")
SERVER_DAYS = 825
RENEW_SECONDS = 86_400  # a certificate expiring sooner than this is made again


@dataclass(frozen=True)
class TlsFiles:
    """The directory's files once they are all present and valid."""

    directory: Path
    admin_token: str
    token: str | None  # the service account's, None without one

    @property
    def ca(self) -> Path:
        return self.directory / CA_CERT

    @property
    def cert(self) -> Path:
        return self.directory / SERVER_CERT

    @property
    def key(self) -> Path:
        return self.directory / SERVER_KEY


def prepare(directory: Path, sans: Sequence[str] = (), namespace: str | None = None) -> TlsFiles:
    """Make (or keep) the CA, the server certificate for ``BASE_SANS`` + ``sans``, the admin
    token and, when ``namespace`` is given (a service account's), its token and namespace file."""
    directory.mkdir(parents=True, exist_ok=True)
    if not _ca_valid(directory):
        _make_ca(directory)
    names = [*BASE_SANS, *sans]
    if not _server_valid(directory, names):
        _make_server_cert(directory, names)
    admin = _token(directory / ADMIN_TOKEN, 0o600)
    token = None
    if namespace is not None:
        token = _token(directory / TOKEN, 0o644)
        _write(directory / NAMESPACE, namespace.encode(), 0o644)
    return TlsFiles(directory, admin, token)


def _openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)


def _checked(*args: str, stdin: bytes | None = None) -> bytes:
    result = _openssl(*args, stdin=stdin)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.decode().strip()}")
    return result.stdout


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, so that a pod or a restarted server never reads half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    os.replace(temporary, path)


def _token(path: Path, mode: int) -> str:
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    _write(path, token.encode(), mode)
    return token


def _pair_matches(cert: Path, key: Path) -> bool:
    """The certificate's public key is the key file's (and both parse)."""
    if not (cert.exists() and key.exists()):
        return False
    from_cert = _openssl("x509", "-in", str(cert), "-noout", "-pubkey")
    from_key = _openssl("pkey", "-in", str(key), "-pubout")
    return (
        from_cert.returncode == 0
        and from_key.returncode == 0
        and from_cert.stdout.strip() == from_key.stdout.strip()
    )


def _not_expiring(cert: Path) -> bool:
    return (
        _openssl("x509", "-in", str(cert), "-noout", "-checkend", str(RENEW_SECONDS)).returncode
        == 0
    )


def _ca_valid(directory: Path) -> bool:
    cert = directory / CA_CERT
    return _pair_matches(cert, directory / CA_KEY) and _not_expiring(cert)


def _san_entry(name: str) -> str:
    try:
        return f"IP:{ipaddress.ip_address(name)}"
    except ValueError:
        return f"DNS:{name}"


def _sans_of(cert: Path) -> set[str]:
    """The certificate's subject alternative names as ``IP:addr`` / ``DNS:name`` entries."""
    text = _checked("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName").decode()
    entries = set()
    for line in text.splitlines()[1:]:
        for item in line.split(","):
            kind, _, value = item.strip().partition(":")
            if kind == "IP Address":
                entries.add(f"IP:{ipaddress.ip_address(value)}")
            elif kind == "DNS":
                entries.add(f"DNS:{value}")
    return entries


def _server_valid(directory: Path, names: Sequence[str]) -> bool:
    cert = directory / SERVER_CERT
    return (
        _pair_matches(cert, directory / SERVER_KEY)
        and _not_expiring(cert)
        and _openssl("verify", "-CAfile", str(directory / CA_CERT), str(cert)).returncode == 0
        and {_san_entry(name) for name in names} <= _sans_of(cert)
    )


def _make_ca(directory: Path) -> None:
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        key, cert = Path(scratch) / "key", Path(scratch) / "cert"
        _checked(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "3650",
            "-subj", "/CN=cosmolet-lab-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        _write(directory / CA_KEY, key.read_bytes(), 0o600)
        _write(directory / CA_CERT, cert.read_bytes(), 0o644)


def _make_server_cert(directory: Path, names: Sequence[str]) -> None:
    sans = ",".join(dict.fromkeys(_san_entry(name) for name in names))
    extensions = (
        f"subjectAltName={sans}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
    )
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        key, ext = Path(scratch) / "key", Path(scratch) / "ext"
        ext.write_text(extensions)
        request = _checked(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-subj", "/CN=cosmolet-lab-apiserver",
        )  # fmt: skip
        cert = _checked(
            "x509", "-req", "-CA", str(directory / CA_CERT), "-CAkey", str(directory / CA_KEY),
            "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(SERVER_DAYS),
            "-extfile", str(ext),
            stdin=request,
        )  # fmt: skip
        _write(directory / SERVER_KEY, key.read_bytes(), 0o600)
        _write(directory / SERVER_CERT, cert, 0o644)
