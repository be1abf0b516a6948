"""Shared helpers: the repository's paths and the Swift CLI the package is compared with."""
import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "fixtures")
DEMO = os.path.abspath(os.path.join(ROOT, "..", "shared", "data", "demo"))


def cli_path():
    path = os.environ.get("MTL_MODEL_CLI") or os.path.join(ROOT, ".build", "debug", "mtl-model")
    return path if os.access(path, os.X_OK) else None


@pytest.fixture(scope="session")
def cli():
    """Runs the Swift `mtl-model` (MTL_MODEL_CLI, else .build/debug/mtl-model): returns
    (exit status, stdout, stderr). Skips the test when it is not built (`swift test` builds it
    and sets MTL_MODEL_CLI; CI always has it)."""
    path = cli_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the Swift mtl-model is needed in CI (set MTL_MODEL_CLI)")
        pytest.skip("the Swift mtl-model is not built (swift build), so nothing to compare with")

    def run(*arguments, timeout=600):
        result = subprocess.run([path] + [str(a) for a in arguments], capture_output=True, text=True, timeout=timeout)
        return result.returncode, result.stdout, result.stderr
    return run


def fixture(*parts):
    return os.path.join(FIXTURES, *parts)
