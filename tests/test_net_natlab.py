"""NAT traversal in a lab of network namespaces (skips without root/iptables).

A relay on the public segment; a worker behind a NAT that drops unsolicited
traffic; a client on the public segment that only knows the worker's circuit
address. AutoNAT must say the worker is private, the client's first link must
be relayed and carry compute calls; DCUtR may then upgrade it to a direct one
(reported, not required: it depends on the NAT).
"""

from __future__ import annotations

import json

import pytest
import trio

from netlab import nat_lab
from netpeer import spawn

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("client_at", ["wan", "lan2"], ids=["public-client", "client-behind-2nd-nat"])
async def test_worker_behind_nat_is_reached_through_the_relay(capsys, client_at: str) -> None:
    with nat_lab(nats=2) as lab:
        with trio.fail_after(120):
            async with spawn("relay", "--ip", lab.ip("wan"), prefix=lab.exec("wan")) as relay:
                r = next(a for a in relay["addrs"] if lab.ip("wan") in a)
                async with spawn("natworker", "--ip", lab.ip("lan1"), "--relay", r, prefix=lab.exec("lan1")) as w:
                    assert w["reachability"] == "private"
                    async with spawn("natclient", "--ip", lab.ip(client_at), "--target", w["circuit"],
                                     "--wait-direct", "15", prefix=lab.exec(client_at), ready_timeout=90) as c:
                        assert c["peer_id"] == w["peer_id"]
                        assert c["kinds_first"] == ["relayed"]
                        # (the first session may already run direct: DCUtR can upgrade within milliseconds)
                        if "direct" in c["kinds_after"]:  # DCUtR worked: the next session goes direct
                            assert c["stream_kinds"][1] == "direct"
                        with capsys.disabled():
                            print(f"\nNAT lab ({client_at}):", json.dumps({k: v for k, v in c.items() if k != "process"}))
