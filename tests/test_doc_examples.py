"""Every shell example marked `<!-- example -->` in docs/ and the README runs as written, in a fresh folder,
with the venv's edgekit and python first on PATH (`<!-- example: slow -->` ones in the slow suite)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"<!-- example(: slow)? -->\n```sh\n(.*?)```", re.S)


def _examples():
    for page in PAGES:
        text = page.read_text()
        for match in _BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 2
            marks = [pytest.mark.slow] if match[1] else []
            yield pytest.param(match[2], id=f"{page.name}:{line}", marks=marks)


EXAMPLES = list(_examples())


def test_the_pages_have_examples():
    assert len(EXAMPLES) >= 8  # one per source kind in docs/examples.md, and the README's quick start


@pytest.mark.parametrize("script", EXAMPLES)
def test_example_runs(script, tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
