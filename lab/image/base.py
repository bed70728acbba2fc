"""A local stand-in for ``python:3.11-slim-bookworm``, for machines that reach Debian's archive
but no container registry.

mmdebstrap makes a minbase bookworm with Debian's python3 (3.11, the official image's minor) as a
tarball, cached under ``/var/tmp/cosmolet-image`` (stable across runs, so a test run and
``make image`` share it) and keyed by everything that goes into it; ``docker import`` turns it
into an image, and ``base.Dockerfile`` adds what the official image has and Debian's python3 has
not, plus this machine's CA bundle, which package downloads from inside a build need here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.image.engine import Engine, EngineUnavailable

HERE = Path(__file__).parent
CACHE = Path("/var/tmp/cosmolet-image")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_TAG = "cosmolet-debian:bookworm"
BASE_TAG = "cosmolet-base:bookworm"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates")
# The official image's sources: security updates included.
SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# A week-old tarball is rebuilt, so the base picks up Debian's security updates.
MAX_AGE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Base:
    """The base image's tag, how long it took, and whether the Debian tarball was cached."""

    tag: str
    seconds: float
    tarball_cached: bool


def mmdebstrap_command(target: Path) -> list[str]:
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        f"--dpkgopt={HERE / 'dpkg.cfg'}",
        f"--aptopt={HERE / 'apt.conf'}",
        SUITE,
        str(target),
        *SOURCES,
    ]


def tarball_key() -> str:
    """A digest of the command and of the option files it names (their content, not paths)."""
    digest = hashlib.sha256(" ".join(mmdebstrap_command(Path("-"))).encode())
    for name in ("dpkg.cfg", "apt.conf"):
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One builder of the tarball at a time (two test runs, or a test and ``make image``)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def debian_tarball(cache: Path = CACHE) -> tuple[Path, bool]:
    """The minbase tarball, built unless a fresh one is cached; and whether it was cached."""
    target = cache / f"{SUITE}-{tarball_key()}.tar"
    with _locked(cache):
        if target.exists() and time.time() - target.stat().st_mtime < MAX_AGE_SECONDS:
            return target, True
        if shutil.which("mmdebstrap") is None:
            raise EngineUnavailable("mmdebstrap is not installed (apt-get install mmdebstrap)")
        partial = target.with_suffix(".partial.tar")
        result = subprocess.run(
            mmdebstrap_command(partial), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise EngineUnavailable(
                f"mmdebstrap failed ({result.returncode}), Debian's archive unreachable?\n"
                f"{result.stderr[-2000:]}"
            )
        partial.rename(target)
        for stale in cache.glob(f"{SUITE}-*.tar"):
            if stale != target:
                stale.unlink()
        return target, False


def build_base(engine: Engine, cache: Path = CACHE) -> Base:
    """Import the tarball and add ``base.Dockerfile``'s layer: ``BASE_TAG`` in ``engine``."""
    started = time.monotonic()
    if not HOST_CA_BUNDLE.exists():
        raise EngineUnavailable(f"no CA bundle at {HOST_CA_BUNDLE} to trust downloads with")
    tarball, cached = debian_tarball(cache)
    engine.docker("import", str(tarball), DEBIAN_TAG)
    with tempfile.TemporaryDirectory(prefix="cosmolet-base-") as context:
        shutil.copy(HERE / "base.Dockerfile", Path(context) / "Dockerfile")
        shutil.copy(HOST_CA_BUNDLE, Path(context) / "host-ca-certificates.crt")
        engine.docker(
            "build",
            "--network=host",
            f"--build-arg=DEBIAN_IMAGE={DEBIAN_TAG}",
            f"--tag={BASE_TAG}",
            context,
        )
    return Base(BASE_TAG, time.monotonic() - started, cached)
