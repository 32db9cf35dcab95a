"""A whole network on this machine: bootstrap, relay and N workers as separate processes on loopback.

    with LocalSwarm(fragment_dir, n_workers=6, replication=2, work_dir=tmp) as swarm:
        swarm.bootstrap_addrs, swarm.model_id       # what a client needs

Every process is ``python -m libp2pia.node.run ROLE ...`` (the same entry point as apps/*.py); the
parent waits for each one's JSON readiness line (with a timeout) and, on the way out — normal exit,
error or Ctrl-C — terminates them all, waits, and kills the ones that linger. Children also get
SIGTERM if the parent dies (Linux PR_SET_PDEATHSIG), so no orphan outlives a crashed parent.
Each child's stderr goes to ``work_dir/<name>.log`` (shown when it fails to start).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Libp2piaError
from ..fragments import load_manifest
from ..limits import PROCESS_READY_TIMEOUT_S, PROCESS_STOP_TIMEOUT_S
from .spread import spread, worker_bytes

ROOT = Path(__file__).resolve().parents[2]
#: Heartbeat period of local swarm workers: a client that joins after the workers' first
#: announcement hears the next one within seconds (the DHT covers the rest).
SWARM_HEARTBEAT_PERIOD_S = 5.0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    info: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def node_command(role: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "libp2pia.node.run", role, *args]


class LocalSwarm:
    """Context manager running a local network; see the module docstring."""

    def __init__(self, fragments: Path, n_workers: int = 6, replication: int = 2, *, work_dir: Path,
                 relay: bool = True, ready_timeout: float = PROCESS_READY_TIMEOUT_S,
                 worker_threads: int = 1, verbose: bool = False,
                 heartbeat_period: float = SWARM_HEARTBEAT_PERIOD_S) -> None:
        self.fragments = Path(fragments)
        self.n_workers, self.replication = n_workers, replication
        self.work_dir = Path(work_dir)
        self.with_relay = relay
        self.ready_timeout = ready_timeout
        self.worker_threads = worker_threads
        self.verbose = verbose
        self.heartbeat_period = heartbeat_period
        self.manifest = load_manifest(self.fragments / "manifest.json")
        self.procs: list[Proc] = []
        self.bootstrap: Proc | None = None
        self.relay: Proc | None = None
        self.workers: list[Proc] = []

    @property
    def model_id(self) -> str:
        return str(self.manifest["model_id"])

    @property
    def bootstrap_addrs(self) -> list[str]:
        return list(self.bootstrap.info["addrs"]) if self.bootstrap else []

    # --- processes ------------------------------------------------------------
    def _env(self, threads: int | None = None) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        if threads is not None:  # N workers share the machine's cores: one numba thread each
            env["NUMBA_NUM_THREADS"] = str(threads)
        return env

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> Proc:
        log = self.work_dir / f"{name}.log"
        with open(log, "wb") as err:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def _wait_ready(self, procs: list[Proc]) -> None:
        """Read each process's readiness line; a timeout or an early exit raises with its log tail."""
        deadline = time.monotonic() + self.ready_timeout
        pending = {p.popen.stdout.fileno(): p for p in procs}  # type: ignore[union-attr]
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                p = next(iter(pending.values()))
                raise Libp2piaError(f"{p.name} not ready within {self.ready_timeout:.0f} s; log:\n{p.log_tail()}")
            ready, _, _ = select.select(list(pending), [], [], min(left, 1.0))
            for fd in ready:
                p = pending.pop(fd)
                line = p.popen.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise Libp2piaError(f"{p.name} exited before it was ready (code {p.popen.wait()}); "
                                        f"log:\n{p.log_tail()}")
                p.info = json.loads(line)
                if self.verbose:
                    print(f"  {p.name} ready: {p.info.get('peer_id', '')}", file=sys.stderr)

    def start(self) -> "LocalSwarm":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        dirs = spread(self.fragments, self.work_dir / "spread", self.n_workers, self.replication)
        plan = json.loads((self.work_dir / "spread" / "placement.json").read_text())["workers"]
        self.bootstrap = self._spawn("bootstrap", node_command("bootstrap", "--manifest", str(self.fragments)),
                                     self._env())
        self._wait_ready([self.bootstrap])
        boot = self.bootstrap_addrs
        if self.with_relay:
            self.relay = self._spawn("relay", node_command("relay"), self._env())
        self._prewarm_kernels()
        for i, d in enumerate(dirs):
            storage = worker_bytes(self.manifest, plan[i]) + 1
            cmd = node_command("worker", "--bootstrap", *boot, "--fragments", str(d), "--storage", str(storage),
                               "--heartbeat-period", str(self.heartbeat_period))
            self.workers.append(self._spawn(f"worker-{i}", cmd, self._env(self.worker_threads)))
        self._wait_ready(([self.relay] if self.relay else []) + self.workers)
        return self

    def _prewarm_kernels(self) -> None:
        """Compile the model's quant kernels once, here, before the workers start: they then load them
        from numba's on-disk cache instead of all compiling the same code at once on the same cores."""
        from ..quant import SUPPORTED, warmup

        names = {q.name for q in SUPPORTED}
        warmup(sorted({s["type"] for f in self.manifest["fragments"] for s in f["slices"] if s.get("type") in names}))

    def kill_worker(self, index: int) -> None:
        """SIGKILL one worker (failover demos and tests)."""
        self.workers[index].popen.kill()

    def stop(self) -> None:
        """Terminate every process, wait, kill the ones that linger; close the pipes."""
        for p in self.procs:
            if p.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.popen.terminate()
        deadline = time.monotonic() + PROCESS_STOP_TIMEOUT_S
        for p in self.procs:
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
            if p.popen.stdout is not None:
                p.popen.stdout.close()
        self.procs.clear()

    def __enter__(self) -> "LocalSwarm":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.work_dir / "spread", ignore_errors=True)


def fragment_cache(model: Path, max_fragment_bytes: int, cache: Path | None = None) -> Path:
    """The fragment directory of ``model`` cut at ``max_fragment_bytes``, built once and kept in the
    libp2pia cache under ``fragments/<sha256[:16]>-<limit>`` (fragment() writes it atomically)."""
    from ..default_model import cache_dir
    from ..fragments import file_sha256, fragment

    digest = _known_sha256(model) or file_sha256(model)
    out = (cache or cache_dir()) / "fragments" / f"{digest[:16]}-{max_fragment_bytes}"
    if (out / "manifest.json").exists():
        with contextlib.suppress(Libp2piaError):
            m = load_manifest(out / "manifest.json")
            if m["source"]["sha256"] == digest and all((out / f["file"]).exists() for f in m["fragments"]):
                return out
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fragment(model, out, max_fragment_bytes, hash_source=True)   # the cache check above reads it
    return out


def _known_sha256(model: Path) -> str | None:
    """The default model's sha256 from its verification stamp (saves hashing 253 MB)."""
    stamp = model.with_suffix(".verified.json")
    try:
        rec = json.loads(stamp.read_text())
        st = model.stat()
    except (OSError, ValueError):
        return None
    if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
        return str(rec.get("sha256"))
    return None
