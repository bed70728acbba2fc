"""The container image, built from the project's Dockerfile and run: on a local stand-in for
``python:3.11-slim-bookworm`` made from Debian's packages (no registry is reachable here), by a
private dockerd that leaves the host's network alone and is stopped at the end (``lab.image``).

Skipped, with what failed, where no engine can run (no dockerd or mmdebstrap, Debian's archive
unreachable, dockerd does not start); in CI that is a failure, as for the other real-part tests,
unless ``COSMOLET_SKIP_IMAGE_TEST=1``. The Debian tarball is cached under /var/tmp between runs;
a cold run takes about a minute and a half here, most of it apt and pip inside the build.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from lab.image.base import build_base
from lab.image.build import build_image, chart_ids, version
from lab.image.engine import Engine, EngineUnavailable, start_private

SKIP_VARIABLE = "COSMOLET_SKIP_IMAGE_TEST"
TAG = "cosmolet:image-test"
# OpenShift runs pods under an arbitrary uid in group 0, with no passwd entry.
ANY_UID = "1000680000:0"
# The local base is larger than the official slim image (Debian's python3-pip and -venv); the
# bound catches wheels, caches or build tools creeping back into a layer.
MAX_SIZE_BYTES = 550_000_000

NUMBERED = """\
mode: numbered
nodeName: node1
bgp:
  asn: 65001
  routerId: 192.0.2.1
  peers:
    - address: 169.254.0.0
      asn: 65101
      localAddress: 169.254.0.1
"""

HYBRID = """\
mode: hybrid
nodeName: node1
bgp:
  asn: 65001
  routerId: 192.0.2.1
  interfaces: [eth1]
"""


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"no container engine in CI (set {SKIP_VARIABLE}=1 to skip): {reason}")
    pytest.skip(f"no container engine: {reason}")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    if os.environ.get(SKIP_VARIABLE):
        pytest.skip(f"{SKIP_VARIABLE} is set")
    try:
        instance = start_private()
    except EngineUnavailable as error:
        _unavailable(str(error))
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    try:
        base = build_base(engine)
    except EngineUnavailable as error:
        _unavailable(str(error))
    built = build_image(engine, TAG, base.tag)
    cached = "cached" if base.tarball_cached else "built"
    print(
        f"\nimage: base {base.seconds:.0f} s (Debian tarball {cached}), "
        f"build {built.seconds:.0f} s, size {built.size_bytes / 1e6:.0f} MB"
    )
    return built.tag


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("image-configs")
    (directory / "numbered.yaml").write_text(NUMBERED)
    (directory / "hybrid.yaml").write_text(HYBRID)
    # Readable by any uid, as a ConfigMap's files are.
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)
    return directory


def run(
    engine: Engine, image: str, *command: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``docker run`` with no network; ``command`` replaces the entrypoint."""
    entrypoint, *args = command
    return engine.docker(
        "run",
        "--rm",
        "--network=none",
        *options,
        f"--entrypoint={entrypoint}",
        image,
        *args,
        timeout=120,
    )


def test_runs_as_the_users_the_chart_names(engine: Engine, image: str) -> None:
    uid, gid, frrvty = chart_ids()
    assert run(engine, image, "id", "-u").stdout.strip() == str(uid)
    assert run(engine, image, "id", "-g").stdout.strip() == str(gid)
    assert str(frrvty) in run(engine, image, "id", "-G").stdout.split()
    groups = run(engine, image, "getent", "group", "cosmolet", "frr", "frrvty").stdout.split()
    assert groups == [f"cosmolet:x:{gid}:", "frr:x:10002:", f"frrvty:x:{frrvty}:cosmolet,frr"]
    frr = run(engine, image, "getent", "passwd", "frr").stdout
    assert frr.startswith("frr:x:10002:10002:")


def test_frr_install_left_adduser_conf_as_debian_ships_it(engine: Engine, image: str) -> None:
    conf = run(engine, image, "cat", "/etc/adduser.conf").stdout
    assert "LAST_SYSTEM_UID=10002" not in conf
    assert "#LAST_SYSTEM_GID=999" in conf


def test_cosmolet_and_exabgp_versions(engine: Engine, image: str) -> None:
    assert run(engine, image, "cosmolet", "--version").stdout.strip() == f"cosmolet {version()}"
    # ExaBGP 5 has a `version` command; `exabgp --version` is a usage error (exit 2).
    exabgp = run(engine, image, "exabgp", "version").stdout
    assert re.search(r"^ExaBGP : 5\.0\.15$", exabgp, re.MULTILINE), exabgp
    assert re.search(r"^Python : 3\.11\.", exabgp, re.MULTILINE), exabgp


@pytest.mark.parametrize(
    ("program", "option", "says"),
    [
        ("vtysh", "--help", "Integrated shell for FRR (version 8.4."),
        ("/usr/lib/frr/zebra", "--version", "zebra version 8.4."),
        ("/usr/lib/frr/bfdd", "--version", "bfdd version 8.4."),
    ],
)
def test_frr_programs_run(engine: Engine, image: str, program: str, option: str, says: str) -> None:
    assert says in run(engine, image, program, option).stdout


def test_no_compiler_no_pip_cache_no_build_leftovers(engine: Engine, image: str) -> None:
    script = (
        "for c in gcc cc c++ make; do command -v $c; done; "
        "ls -d /root/.cache/pip /nonexistent/.cache/pip /wheels /install /src 2>/dev/null; "
        "true"
    )
    found = run(engine, image, "sh", "-c", script, options=("--user=0",)).stdout
    assert found == ""


def test_size(engine: Engine, image: str) -> None:
    size = int(engine.docker("image", "inspect", "--format={{.Size}}", image).stdout)
    print(f"\nimage size: {size / 1e6:.0f} MB ({size} bytes)")
    assert size < MAX_SIZE_BYTES


def test_works_under_any_uid_with_a_read_only_root(
    engine: Engine, image: str, configs: Path
) -> None:
    options = ("--read-only", f"--user={ANY_UID}", f"--volume={configs}:/etc/cosmolet:ro")
    assert run(engine, image, "id", "-u", options=options).stdout.strip() == "1000680000"
    checked = run(
        engine, image, "cosmolet", "check-config", "/etc/cosmolet/numbered.yaml", options=options
    )
    assert "valid: mode numbered, AS 65001, 1 peers" in checked.stdout
    exabgp = run(
        engine,
        image,
        "cosmolet",
        "render",
        "exabgp",
        "--config=/etc/cosmolet/numbered.yaml",
        options=options,
    ).stdout
    assert re.search(r"run \S+ -m cosmolet agent --config /etc/cosmolet/numbered\.yaml;", exabgp), (
        exabgp
    )
    assert "neighbor 169.254.0.0 {" in exabgp
    assert "local-as 65001;" in exabgp
    # The chart's init container: FRR's config for hybrid mode, under the same restrictions.
    frr = run(
        engine,
        image,
        "cosmolet",
        "render",
        "frr",
        "--config=/etc/cosmolet/hybrid.yaml",
        options=options,
    ).stdout
    assert "interface eth1\n ipv6 nd ra-interval 3\n no ipv6 nd suppress-ra" in frr
