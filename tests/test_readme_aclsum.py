"""The README's aclsum example, run as written: its shell lines (after the pip install) in a
fresh data directory, and the sources line it shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def example() -> tuple[list[str], str]:
    """(the example's shell lines, the output block printed under them)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### An external corpus: the 250 ACL papers of `aclsum`") :]
    commands, output = re.findall(r"```(?:sh)?\n(.*?)```", section, flags=re.S)[:2]
    lines = [line.split("#")[0].strip() for line in commands.splitlines()]
    return [line for line in lines if line and "pip install" not in line], output


def test_readme_aclsum_example_ingests_and_cites_what_it_shows(tmp_path: Path) -> None:
    pytest.importorskip("aclsum")
    commands, output = example()
    assert len(commands) == 2 and "scripts/aclsum_corpus.py" in commands[0]
    env = {**os.environ, "PAPERCHAT_DATA_DIR": str(tmp_path / "data")}
    results = []
    for command in commands:
        # Run from a scratch folder (aclsum.jsonl lands there), with this venv and checkout.
        command = command.replace(".venv/bin/", f"{BIN}/").replace(
            "scripts/", f"{ROOT}/scripts/"
        )
        done = subprocess.run(
            ["bash", "-ec", command], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        results.append(done.stdout)
    assert "Indexed 250 papers (250 new" in results[0]
    sources = output[output.index("Sources:") :].strip()
    assert sources in results[1], results[1]
    # The answer's wording follows rag/answer.py (tuned often), so only its citation is
    # checked here; the README shows the wording of the commit that last updated it.
    assert "[1]" in results[1][: results[1].index("Sources:")]
