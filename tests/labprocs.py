"""Child processes for lab tests and benchmarks: each prints JSON lines on stdout, stderr goes to a log.

    procs = Procs(work_dir)
    procs.spawn("worker-0", ["ip", "netns", "exec", ns], node("worker", ...), threads=1)
    info = procs.line("worker-0", timeout)        # the next JSON line (bounded wait)
    procs.stop()                                   # SIGKILL + wait for every child (call in finally)
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Procs:
    """Child processes with a JSON line protocol on stdout; all killed in ``stop``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, prefix: list[str], cmd: list[str], threads: int | None = None) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        if threads:
            env["NUMBA_NUM_THREADS"] = str(threads)
        with open(self.work / f"{name}.log", "wb") as err:
            p = subprocess.Popen([*prefix, sys.executable, *cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=err, env=env, cwd=ROOT)
        self.procs[name] = p
        return p

    def line(self, name: str, timeout: float) -> dict:
        p = self.procs[name]
        ready, _, _ = select.select([p.stdout], [], [], timeout)
        raw = p.stdout.readline() if ready else b""
        if not raw:
            raise AssertionError(f"{name}: no output within {timeout:.0f} s (rc {p.poll()}); log:\n{self.tail(name)}")
        return json.loads(raw)

    def tail(self, name: str, n: int = 20) -> str:
        try:
            return "\n".join((self.work / f"{name}.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def kill(self, name: str) -> None:
        self.procs[name].kill()

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            p.wait(timeout=30)
            p.stdout.close()


def node(role: str, *args: str) -> list[str]:
    return ["-m", "libp2pia.node.run", role, *args]
