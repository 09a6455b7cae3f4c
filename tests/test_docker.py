"""The Dockerfiles, checked without a Docker daemon: every file they copy exists in the repository, and the
CPU image installs with the commands the README gives users."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists_and_is_not_ignored(dockerfile):
    ignored = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and ln[0] != "#"]
    copies = [args for op, args in _instructions(dockerfile) if op in ("COPY", "ADD")]
    assert copies
    for args in copies:
        *sources, _dest = shlex.split(args)
        for source in (s for s in sources if not s.startswith("--")):
            assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which is not in the repository"
            assert not any(Path(source).match(pattern) for pattern in ignored), f"{source} is in .dockerignore"


def test_the_cpu_image_installs_as_the_readme_says_and_runs_edgekit():
    steps = _instructions(ROOT / "docker" / "cpu.Dockerfile")
    run = " ".join(args for op, args in steps if op == "RUN")
    readme = (ROOT / "README.md").read_text()
    for flags in ("--extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt -e",
                  "--no-deps -r requirements-nodeps.txt"):  # fmt: skip
        assert flags in run and flags in readme, flags
    assert ("ENTRYPOINT", '["edgekit"]') in steps
