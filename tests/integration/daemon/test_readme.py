"""The README cannot drift from the code: its quick start (`make demo` runs
`chainsettle demo`) and every command block marked `<!-- demo-test -->` run
here, as written, against a demo this test starts (its state in a temporary
directory instead of `.state/demo`, the only substitution).

Each block runs in `bash -e -o pipefail` from the repository root, so any
command that fails (a 4xx/5xx with `curl -f`, a CLI error, a `grep -q` that
finds nothing) fails the test, naming the block. The demo must print no
traceback and stop cleanly on Ctrl-C (SIGINT).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from daemon.devchain import free_port

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
MARK = "<!-- demo-test -->"
STATE_IN_README = ".state/demo/"


def marked_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```sh block right after the marker."""
    out = []
    for m in re.finditer(re.escape(MARK) + r"\s*\n```sh\n(.*?)\n```", text, re.S):
        out.append((text[: m.start()].count("\n") + 1, m.group(1)))
    return out


def test_the_readme_marks_runnable_blocks():
    blocks = marked_blocks(README.read_text())
    assert len(blocks) >= 6 and README.read_text().count(MARK) == len(blocks)
    assert all(STATE_IN_README + "demo.env" in body for _, body in blocks)


@pytest.fixture
def demo(tmp_path):
    state = tmp_path / "demo"
    log = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSETTLE_") and k != "DATABASE_URL"}
    env.update(CHAINSETTLE_DEMO_STATE=str(state), PYTHONUNBUFFERED="1")
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "demo", "--api-port", str(free_port())],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while b"admin token" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the demo did not come up within 120 s:\n" + log.read_text()[-3000:]
            time.sleep(0.2)
        url = re.search(r"CS_URL='([^']+)'", (state / "demo.env").read_text()).group(1)
        while True:  # the banner comes first; the API once the daemon is up
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield state, log
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()


def test_every_marked_readme_block_runs_against_the_demo(demo):
    state, log = demo
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSETTLE_") and k != "DATABASE_URL"}
    for line, body in marked_blocks(README.read_text()):
        script = body.replace(STATE_IN_README, f"{state}/")
        run = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, (f"README.md block at line {line} failed ({run.returncode}):\n{body}\n"
                                     f"--- stdout\n{run.stdout[-2000:]}\n--- stderr\n{run.stderr[-2000:]}")
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "state        " + str(state) in text and "wiped at every start" in text
