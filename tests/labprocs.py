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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def start_lab_network(procs: Procs, lab: Any, frags: Path, dirs: Sequence[Path], namespaces: Sequence[str],
                      storage: Sequence[int]) -> tuple[list[str], list[str]]:
    """A bootstrap node and a relay on the lab's public segment ("wan"), then worker i serving
    ``dirs[i]`` in ``namespaces[i]`` (through the relay when behind a NAT, one numba thread,
    ``storage[i]`` bytes). Returns the bootstrap and relay addresses on the public segment; the
    workers' readiness lines are left to the caller (``procs.line("worker-i", ...)``)."""
    wan = lab.ip("wan")
    procs.spawn("bootstrap", lab.exec("wan"), node("bootstrap", "--listen", f"/ip4/{wan}/tcp/0",
                                                   "--manifest", str(frags)))
    boot = [a for a in procs.line("bootstrap", 120)["addrs"] if wan in a]
    procs.spawn("relay", lab.exec("wan"), node("relay", "--listen", f"/ip4/{wan}/tcp/0"))
    relay = [a for a in procs.line("relay", 120)["addrs"] if wan in a]
    for i, (d, ns, limit) in enumerate(zip(dirs, namespaces, storage, strict=True)):
        procs.spawn(f"worker-{i}", lab.exec(ns), node(
            "worker", "--listen", f"/ip4/{lab.ip(ns)}/tcp/0", "--bootstrap", *boot, "--relay", *relay,
            "--fragments", str(d), "--storage", str(limit)), threads=1)
    return boot, relay
