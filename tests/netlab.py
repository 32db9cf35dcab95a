"""A NAT lab in network namespaces (reference/nat-lab.md), for tests that need real NATs.

    with nat_lab(nats=1) as lab:          # skips the test without root / ip / iptables
        lab.exec("wan")  -> ["ip", "netns", "exec", "<wan ns>"]   (prefix for a command)
        lab.ip("wan")    -> "10.77.0.1";  lab.ip("lan1") -> "192.168.77.2"

Topology: ``wan`` (10.77.0.1 on a bridge) is the public segment; each NAT ``i``
is a router ``nat<i>`` (wan 10.77.0.<i+1>, MASQUERADE) in front of ``lan<i>``
(192.168.<76+i>.2) that drops unsolicited inbound traffic (a typical home NAT).
Namespace and interface names carry a random suffix so parallel or crashed runs
never collide; everything is deleted in ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the NAT lab needs root (network namespaces, iptables)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"the NAT lab needs `{tool}` (apt-get install iproute2 iptables)"
    return None


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


class NatLab:
    def __init__(self, nats: int = 1) -> None:
        self.sfx = secrets.token_hex(3)
        self.nats = nats
        self.ns: dict[str, str] = {"wan": f"lpw-{self.sfx}"}
        for i in range(1, nats + 1):
            self.ns[f"nat{i}"] = f"lpn{i}-{self.sfx}"
            self.ns[f"lan{i}"] = f"lpl{i}-{self.sfx}"
        self._ips = {"wan": "10.77.0.1"}
        for i in range(1, nats + 1):
            self._ips[f"nat{i}"] = f"10.77.0.{i + 1}"
            self._ips[f"lan{i}"] = f"192.168.{76 + i}.2"

    def exec(self, role: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role]]

    def ip(self, role: str) -> str:
        return self._ips[role]

    def build(self) -> None:
        s, wan = self.sfx, self.ns["wan"]
        for ns in self.ns.values():
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", wan, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", wan, "addr", "add", "10.77.0.1/24", "dev", "br0")
        _run("ip", "-n", wan, "link", "set", "br0", "up")
        for i in range(1, self.nats + 1):
            nat, lan = self.ns[f"nat{i}"], self.ns[f"lan{i}"]
            w, n0, n1, l0 = f"w{i}{s}", f"n{i}{s}", f"m{i}{s}", f"l{i}{s}"  # <= 15 chars
            # wan bridge <-> router
            _run("ip", "link", "add", w, "type", "veth", "peer", "name", n0)
            _run("ip", "link", "set", w, "netns", wan)
            _run("ip", "link", "set", n0, "netns", nat)
            _run("ip", "-n", wan, "link", "set", w, "master", "br0")
            _run("ip", "-n", wan, "link", "set", w, "up")
            _run("ip", "-n", nat, "addr", "add", f"10.77.0.{i + 1}/24", "dev", n0)
            _run("ip", "-n", nat, "link", "set", n0, "up")
            # router <-> private host
            _run("ip", "link", "add", n1, "type", "veth", "peer", "name", l0)
            _run("ip", "link", "set", n1, "netns", nat)
            _run("ip", "link", "set", l0, "netns", lan)
            _run("ip", "-n", nat, "addr", "add", f"192.168.{76 + i}.1/24", "dev", n1)
            _run("ip", "-n", nat, "link", "set", n1, "up")
            _run("ip", "-n", lan, "addr", "add", f"192.168.{76 + i}.2/24", "dev", l0)
            _run("ip", "-n", lan, "link", "set", l0, "up")
            _run("ip", "-n", lan, "route", "add", "default", "via", f"192.168.{76 + i}.1")
            x = ["ip", "netns", "exec", nat]
            _run(*x, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            _run(*x, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", n0, "-j", "MASQUERADE")
            _run(*x, "iptables", "-A", "FORWARD", "-i", n0, "-o", n1, "-m", "state", "--state",
                 "ESTABLISHED,RELATED", "-j", "ACCEPT")
            _run(*x, "iptables", "-A", "FORWARD", "-i", n0, "-o", n1, "-j", "DROP")
            # A home router drops unsolicited SYNs silently (no RST): what lets DCUtR's
            # simultaneous open punch through (reference/py-libp2p-notes.md §3d).
            _run(*x, "iptables", "-A", "INPUT", "-i", n0, "-m", "state", "--state", "NEW", "-j", "DROP")

    def teardown(self) -> None:
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@contextlib.contextmanager
def nat_lab(nats: int = 1) -> Iterator[NatLab]:
    """Build a lab (or skip the test saying why), tear it down whatever happens."""
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = NatLab(nats)
    try:
        try:
            lab.build()
        except (subprocess.CalledProcessError, OSError) as exc:
            # root and iptables are here (checked above): a lab that does not build is a failure, not a skip
            err = getattr(exc, "stderr", b"") or b""
            raise AssertionError(f"cannot build the NAT lab: {exc} {err.decode(errors='replace').strip()}") from exc
        yield lab
    finally:
        lab.teardown()
