"""Installed as a tool: ``pip install .`` (not editable) into a new virtual environment
puts a working ``omnimind`` on its PATH, as the README says.

Without the network: the wheel is built by this environment's setuptools (the dev extra,
``--no-build-isolation``) from a copy of the checkout, and the new environment finds its
dependencies in this one's site-packages (a ``.pth`` file), so ``--no-index`` suffices.
What the new environment's ``omnimind`` runs is the installed copy of the package, its
dashboard files included, never the checkout. A real ``pipx install .`` (dependencies
from the registry) is in docs/operations.md, "Installing".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from omnimind_trio import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".tox", "*_cache", "__pycache__", "build", "dist", "*.egg-info",
    "config", "logs", "omnimind.db*", "screenshots",
)  # fmt: skip
STEP_SECONDS = 60.0

# The requirements the wheel declares, each met in the environment it is installed into
# (what `pip check` does, for this one distribution).
CHECK_REQUIREMENTS = """
from importlib.metadata import PackageNotFoundError, requires, version
from packaging.requirements import Requirement
unmet = []
for line in requires("omnimind-trio"):
    requirement = Requirement(line)
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        continue  # an extra's
    try:
        found = version(requirement.name)
    except PackageNotFoundError:
        unmet.append(line)
        continue
    if not requirement.specifier.contains(found, prereleases=True):
        unmet.append(f"{line} (found {found})")
print("\\n".join(unmet))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with omnimind-trio installed by ``pip install .``."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    [purelib] = (venv / "lib").glob("python3*/site-packages")
    (purelib / "test-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    options = ["--no-index", "--no-build-isolation", "--no-deps", str(source)]
    done = subprocess.run(
        [*install, *options], capture_output=True, text=True, timeout=STEP_SECONDS
    )
    assert done.returncode == 0, done.stderr
    return venv


def test_the_package_is_installed_into_the_new_environment(venv: Path) -> None:
    python = venv / "bin" / "python"
    where = subprocess.run(
        [python, "-c", "import omnimind_trio; print(omnimind_trio.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not the checkout
    unmet = subprocess.run(
        [python, "-c", CHECK_REQUIREMENTS], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert unmet == ""


def test_omnimind_on_path_serves_and_answers(venv: Path, tmp_path: Path) -> None:
    bin_dir = venv / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIMIND_", "VIRTUAL_ENV"))}
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", XDG_RUNTIME_DIR=str(runtime))
    omnimind = shutil.which("omnimind", path=env["PATH"])
    assert omnimind == str(bin_dir / "omnimind")

    version = subprocess.run(
        ["omnimind", "--version"], env=env, capture_output=True, text=True, check=True
    )
    assert version.stdout == f"omnimind {__version__}\n"

    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            ["omnimind", "serve", "--port", "0"],
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STEP_SECONDS
        while (serving := re.search(r"serving on (\S+)", log.read_text())) is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = serving[1]
        stored = json.loads((home / "config" / "dashboard_auth.json").read_text())
        auth = (stored["user"], stored["pass"])
        status = httpx.get(f"{url}/daemon/status", auth=auth, timeout=10)
        assert status.status_code == 200
        assert status.json()["workspace"] == str(home)
        page = httpx.get(f"{url}/", auth=auth, timeout=10)  # the wheel's dashboard files
        assert page.status_code == 200 and "<html" in page.text.lower()
        # The client finds the daemon and its credentials from any directory.
        client = subprocess.run(
            ["omnimind", "--json", "status"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_SECONDS,
        )
        assert client.returncode == 0, client.stderr
        assert json.loads(client.stdout)["running"] is True
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=STEP_SECONDS) == 0, log.read_text()
        assert proc.stdout is not None
        assert f"user: {stored['user']}" in proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
