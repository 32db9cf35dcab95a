"""Volunteer peers as arrays: class, storage, compute speed, link to the client, churn behaviour.

Every figure below is an *assumption* of the simulation, stated once here and
overridable. Sources where there are any: the plan's per-hop latencies
(LAN ~1 ms, fibre ~20 ms, mobile 50–100 ms), the py-libp2p field notes
(1.5 ms software round trip on a reused stream, ~50 MB/s per link), and the
usual orders of magnitude of home broadband and 4G links.

Peer classes (stability order: desktop > laptop > phone):

| class   | share | storage | compute × | mean session | mean offline | availability |
|---------|-------|---------|-----------|--------------|--------------|--------------|
| desktop | 0.25  | 100 MiB | 1.0       | 8 h          | 4 h          | 0.67         |
| laptop  | 0.35  | 40 MiB  | 1.0       | 3 h          | 5 h          | 0.38         |
| phone   | 0.40  | 10 MiB  | 0.4       | 1 h          | 2 h          | 0.33         |

Network profiles (per class: median RTT to the client in ms, lognormal sigma,
down / up Mbit/s); the client sits on the same kind of link as a laptop:

| profile | desktop           | laptop            | phone            |
|---------|-------------------|-------------------|------------------|
| lan     | 1 ms, 1000/1000   | 1 ms, 500/500     | 3 ms, 200/200    |
| fibre   | 20 ms, 500/200    | 22 ms, 300/100    | 25 ms, 100/50    |
| mobile  | 35 ms, 100/20     | 50 ms, 50/10      | 75 ms, 30/8      |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import Libp2piaError
from ..limits import MiB

CLASSES = ("desktop", "laptop", "phone")
DESKTOP, LAPTOP, PHONE = 0, 1, 2


@dataclass(frozen=True)
class ClassProfile:
    """Behaviour of one peer class (see the module table)."""

    share: float
    storage_bytes: int
    compute_factor: float
    mean_session_s: float
    mean_offline_s: float

    @property
    def availability(self) -> float:
        return self.mean_session_s / (self.mean_session_s + self.mean_offline_s)


DEFAULT_CLASSES: dict[str, ClassProfile] = {
    "desktop": ClassProfile(0.25, 100 * MiB, 1.0, 8 * 3600.0, 4 * 3600.0),
    "laptop": ClassProfile(0.35, 40 * MiB, 1.0, 3 * 3600.0, 5 * 3600.0),
    "phone": ClassProfile(0.40, 10 * MiB, 0.4, 1 * 3600.0, 2 * 3600.0),
}


@dataclass(frozen=True)
class Link:
    """One class's link to the client: median RTT, its spread, bandwidths."""

    rtt_ms: float
    sigma: float
    down_mbps: float
    up_mbps: float


NETWORKS: dict[str, dict[str, Link]] = {
    "lan": {"desktop": Link(1.0, 0.3, 1000, 1000), "laptop": Link(1.0, 0.3, 500, 500),
            "phone": Link(3.0, 0.3, 200, 200)},
    "fibre": {"desktop": Link(20.0, 0.4, 500, 200), "laptop": Link(22.0, 0.4, 300, 100),
              "phone": Link(25.0, 0.4, 100, 50)},
    "mobile": {"desktop": Link(35.0, 0.5, 100, 20), "laptop": Link(50.0, 0.5, 50, 10),
               "phone": Link(75.0, 0.5, 30, 8)},
}

#: Quantized weight bytes per second one peer streams through its matvec kernel.
#: Measured by benchmarks/kernels.py (docs/kernels.md, 22 Nov 2026): our Q4_K kernel,
#: 1 thread, CPU-time median 1.63 ms per 10 MB (min 1.04; Q6_K 1.36) on a loaded
#: 2-vCPU EPYC, i.e. ~6 GB/s. A parameter everywhere (--weight-gbps); the brief's
#: earlier placeholder was 2.5 GB/s.
DEFAULT_WEIGHT_BYTES_PER_S = 6.0e9


@dataclass(frozen=True)
class Peers:
    """N peers as parallel arrays (index = peer id)."""

    cls: np.ndarray            # int8 class index into CLASSES
    storage: np.ndarray        # int64 bytes
    rtt_s: np.ndarray          # float64 round trip to the client
    down_bps: np.ndarray       # float64 bytes/s
    up_bps: np.ndarray         # float64 bytes/s
    weight_bps: np.ndarray     # float64 quantized weight bytes/s through the kernel
    stability: np.ndarray      # float64 expected availability (higher = more stable)
    network: str = "fibre"
    classes: Mapping[str, ClassProfile] = field(default_factory=lambda: DEFAULT_CLASSES)

    @property
    def n(self) -> int:
        return int(self.cls.shape[0])


def client_link(network: str) -> Link:
    """The client's own link: the laptop link of the profile."""
    return _profile(network)["laptop"]


def _profile(network: str) -> dict[str, Link]:
    try:
        return NETWORKS[network]
    except KeyError:
        raise Libp2piaError(f"unknown network profile {network!r} (known: {', '.join(NETWORKS)})") from None


def make_peers(n: int, rng: np.random.Generator, network: str = "fibre",
               classes: Mapping[str, ClassProfile] | None = None,
               weight_bytes_per_s: float = DEFAULT_WEIGHT_BYTES_PER_S,
               rtt_scale: float = 1.0) -> Peers:
    """Draw ``n`` peers: class by share, RTT lognormal around the class median (× ``rtt_scale``)."""
    if n < 1:
        raise Libp2piaError(f"need at least one peer, got {n}")
    classes = dict(classes or DEFAULT_CLASSES)
    prof = _profile(network)
    shares = np.array([classes[c].share for c in CLASSES], float)
    if shares.min() < 0 or shares.sum() <= 0:
        raise Libp2piaError("peer class shares must be non-negative and not all zero")
    # Exact class counts (largest remainder), so small populations keep the mix.
    raw = shares / shares.sum() * n
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(-(raw - counts))[: n - counts.sum()]] += 1
    cls = rng.permutation(np.repeat(np.arange(len(CLASSES), dtype=np.int8), counts))

    def per_class(values: list[float]) -> np.ndarray:
        return np.asarray(values, float)[cls]

    links = [prof[c] for c in CLASSES]
    median = per_class([lk.rtt_ms for lk in links]) * 1e-3 * rtt_scale
    sigma = per_class([lk.sigma for lk in links])
    rtt = median * np.exp(sigma * rng.standard_normal(n))
    return Peers(
        cls=cls,
        storage=per_class([classes[c].storage_bytes for c in CLASSES]).astype(np.int64),
        rtt_s=rtt,
        down_bps=per_class([lk.down_mbps * 1e6 / 8 for lk in links]),
        up_bps=per_class([lk.up_mbps * 1e6 / 8 for lk in links]),
        weight_bps=per_class([classes[c].compute_factor * weight_bytes_per_s for c in CLASSES]),
        stability=per_class([classes[c].availability for c in CLASSES]),
        network=network, classes=classes,
    )


def uniform_storage(peers: Peers, storage_bytes: int) -> Peers:
    """The plan's premise: every peer stores the same budget (10 MB = one fragment)."""
    return replace(peers, storage=np.full(peers.n, storage_bytes, np.int64))
