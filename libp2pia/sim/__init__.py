"""libp2pia.sim: internet-scale simulation of a fragment plan served by volunteer peers.

Pure numpy, no network. The pipeline, one module per stage:

| module       | job                                                                  |
|--------------|----------------------------------------------------------------------|
| plan.py      | plan/manifest dict → flat arrays (bytes, class, role, layer, expert) |
| peers.py     | peer classes, storage, compute speed, network profiles              |
| placement.py | R replicas per fragment, always-active on the most stable peers      |
| coverage.py  | failures, surviving fragments/experts, token coverage, closed forms |
| latency.py   | seconds per token under the engine's phase schedule                 |
| churn.py     | churn over time, heartbeat detection, re-replication traffic        |
| scenario.py  | one scenario and the failure × replication sweep                    |
| plots.py     | PNG plots (matplotlib, Agg)                                          |
| toy.py       | small hand-made plans for tests                                      |
"""

from __future__ import annotations

from .plan import PlanArrays, plan_arrays, summary
from .scenario import Config, run, sweep

__all__ = ["Config", "PlanArrays", "plan_arrays", "run", "summary", "sweep"]
