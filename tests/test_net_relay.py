"""Circuit relay v2 on loopback: reserve a slot, dial through it, see the link is relayed."""

from __future__ import annotations

import pytest
import trio

from libp2pia.errors import PeerUnavailable
from libp2pia.net.host import open_host
from libp2pia.net.relay import RelayClient, Reachability, circuit_addr, connect_any, connection_kinds, start_relay_hop

ECHO = "/libp2pia-test/echo/1.0.0"


async def echo(stream) -> None:
    await stream.write(await stream.read(1024))


async def test_reserve_and_dial_through_the_relay() -> None:
    with trio.fail_after(60):
        async with open_host() as relay, open_host() as a, open_host() as b:
            await start_relay_hop(relay)
            ra, rb = RelayClient(a), RelayClient(b)
            await ra.start()
            await rb.start()
            a.handle(ECHO, echo)

            # without a reservation, a circuit dial to A fails fast and cleanly
            with pytest.raises(PeerUnavailable):
                await rb.dial(circuit_addr(relay.addrs[0], a.peer_id))

            addr = await ra.reserve(relay.addrs[0])
            assert addr == f"{relay.addrs[0]}/p2p-circuit/p2p/{a.peer_id.to_base58()}"
            # B knows only the circuit address of A
            pid = await connect_any(b, [addr], rb)
            assert pid == a.peer_id
            assert connection_kinds(b, a.peer_id) == ["relayed"]
            s = await b.host.new_stream(a.peer_id, [ECHO])
            await s.write(b"through the relay")
            assert await s.read(100) == b"through the relay"
            await s.close()
            # a direct address is preferred when there is one
            assert connection_kinds(b, relay.peer_id) == ["direct"]


async def test_connect_any_without_relay_client_explains() -> None:
    with trio.fail_after(20):
        async with open_host() as b:
            with pytest.raises(PeerUnavailable, match="only relayed"):
                await connect_any(b, ["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo/p2p-circuit/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"])


async def test_autonat_on_loopback_says_public() -> None:
    with trio.fail_after(30):
        async with open_host() as server, open_host() as me:
            Reachability(server)
            r = Reachability(me)
            await me.connect(server.addrs[0])
            assert await r.check([server.peer_id]) == "public"
