"""Host factory: Noise only, guarded handlers, persisted identity, clean shutdown."""

from __future__ import annotations

import contextlib
import logging
import stat

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.security.secio.transport import ID as SECIO_PROTOCOL_ID
from libp2p.security.secio.transport import Transport as SecioTransport

from libp2pia.errors import PeerUnavailable
from libp2pia.net import yamux_window
from libp2pia.net.host import IDENTITY_FILE, load_or_create_identity, open_host, quiet_libp2p_logs

ECHO = "/libp2pia-test/echo/1.0.0"
BOOM = "/libp2pia-test/boom/1.0.0"


async def echo(stream) -> None:
    await stream.write(await stream.read(1024))


@contextlib.asynccontextmanager
async def foreign_host(sec_opt):
    """A host offering only the given (insecure) security transports."""
    h = new_host(key_pair=create_new_key_pair(), sec_opt=sec_opt, connection_config=ConnectionConfig(max_connections_per_peer=1),
                 listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
    try:
        async with h.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            yield h
    finally:
        await h.close()


def _plaintext(kp):
    return {PLAINTEXT_PROTOCOL_ID: InsecureTransport(kp)}


def _secio(kp):
    return {SECIO_PROTOCOL_ID: SecioTransport(kp)}


@pytest.mark.parametrize("make_sec", [_plaintext, _secio], ids=["plaintext", "secio"])
async def test_insecure_dialers_are_refused(make_sec) -> None:
    with trio.fail_after(20):
        async with open_host() as server:
            server.handle(ECHO, echo)
            kp = create_new_key_pair()
            h = new_host(key_pair=kp, sec_opt=make_sec(kp), connection_config=ConnectionConfig(max_connections_per_peer=1),
                         listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
            try:
                async with h.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
                    with pytest.raises(Exception):  # noqa: B017 - any dial failure is the point
                        with trio.fail_after(10):
                            await h.connect(info_from_p2p_addr(multiaddr.Multiaddr(server.addrs[0])))
                    assert server.peer_id not in h.get_network().connections
            finally:
                await h.close()
            # and the server still works for a proper client
            async with open_host() as client:
                await client.connect(server.addrs[0])
                s = await client.host.new_stream(server.peer_id, [ECHO])
                await s.write(b"hi")
                assert await s.read(10) == b"hi"
                await s.close()


async def test_a_raising_handler_does_not_kill_the_host(caplog) -> None:
    async def boom(stream) -> None:
        await stream.read(10)
        raise RuntimeError("handler bug")

    with trio.fail_after(20):
        async with open_host() as server, open_host() as client:
            server.handle(BOOM, boom)
            server.handle(ECHO, echo)
            await client.connect(server.addrs[0])
            for _ in range(3):
                s = await client.host.new_stream(server.peer_id, [BOOM])
                await s.write(b"x")
                with pytest.raises(Exception):  # noqa: B017 - reset or EOF, both fine
                    data = await s.read(10)
                    if not data:
                        raise EOFError
                await s.close()
            s = await client.host.new_stream(server.peer_id, [ECHO])
            await s.write(b"still alive")
            assert await s.read(100) == b"still alive"
            await s.close()
    assert sum("handler bug" in r.getMessage() for r in caplog.records) == 3


async def test_identity_is_persisted_private_and_reused(tmp_path) -> None:
    kp1 = load_or_create_identity(tmp_path / "node")
    key = tmp_path / "node" / IDENTITY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    kp2 = load_or_create_identity(tmp_path / "node")
    assert kp1.public_key.to_bytes() == kp2.public_key.to_bytes()
    with trio.fail_after(10):
        async with open_host(data_dir=tmp_path / "node") as h:
            first = h.peer_id
        async with open_host(data_dir=tmp_path / "node") as h:
            assert h.peer_id == first
        async with open_host(data_dir=tmp_path / "other") as h:
            assert h.peer_id != first
    assert not list((tmp_path / "node").glob(".*tmp"))


async def test_dial_failure_is_peer_unavailable() -> None:
    with trio.fail_after(15):
        async with open_host() as a:
            async with open_host() as b:
                dead = b.addrs[0]
            with pytest.raises(PeerUnavailable):
                await a.connect(dead, timeout=5)


def test_benign_libp2p_logs_are_filtered(caplog) -> None:
    quiet_libp2p_logs()
    lg = logging.getLogger("libp2p.kad_dht.kad_dht")
    with caplog.at_level(logging.DEBUG, logger="libp2p"):
        logging.getLogger("libp2p").setLevel(logging.ERROR)
        lg.error("Failed to read DHT message from stream: ")
        lg.error("something real broke")
    msgs = [r.getMessage() for r in caplog.records]
    assert "something real broke" in msgs
    assert not any("DHT message" in m for m in msgs)


@pytest.mark.parametrize("exc", [ValueError("body failed"), trio.TooSlowError()])
async def test_errors_in_the_body_propagate_with_services_running(exc) -> None:
    """A regression: cancelling the services' scope while unwinding swallowed the body's error."""
    from libp2pia.net.dht import Dht
    from libp2pia.net.gossip import Gossip

    with trio.fail_after(20):
        with pytest.raises(type(exc)):
            async with open_host() as net:
                await Gossip(net).start()
                await Dht(net).start()
                raise exc


async def test_addrs_are_dialable_and_announce_overrides() -> None:
    with trio.fail_after(20):
        async with open_host(["/ip4/0.0.0.0/tcp/0"]) as server, open_host() as client:
            assert server.addrs and not any("/0.0.0.0/" in a for a in server.addrs)
            loop = next(a for a in server.addrs if a.startswith("/ip4/127.0.0.1/"))
            assert await client.connect(loop) == server.peer_id
        async with open_host(announce=["/ip4/203.0.113.7/tcp/4001"]) as h:
            assert h.addrs == [f"/ip4/203.0.113.7/tcp/4001/p2p/{h.peer_id.to_base58()}"]


@pytest.mark.parametrize("addr,message", [
    ("garbage", "not a multiaddr: 'garbage'"),
    ("/ip4/127.0.0.1/tcp/1/p2p/QmNotAPeer", "not a multiaddr"),
    ("/ip4/127.0.0.1/tcp/1", "not a peer address (…/p2p/<peer id>): '/ip4/127.0.0.1/tcp/1'"),
])
async def test_a_malformed_address_is_peer_unavailable(addr: str, message: str) -> None:
    """A typo in --bootstrap or a peer's garbage address is our error type with the address in it,
    not a multiaddr/libp2p exception escaping (which the CLI would show as a traceback)."""
    with trio.fail_after(15):
        async with open_host() as a:
            with pytest.raises(PeerUnavailable) as ei:
                await a.connect(addr, timeout=5)
    assert message in str(ei.value)


@pytest.mark.parametrize("fails", [False, True], ids=["close", "reset"])
async def test_guarded_close_and_reset_are_bounded(autojump_clock, fails: bool) -> None:  # noqa: ANN001
    """After the handler, the guard closes (or on error resets) the stream; a peer that stopped
    reading can make that wait forever, so it is bounded. (A stand-in stream whose close/reset
    never return; the thing under test is the guard.)"""
    from libp2pia.limits import DEFAULT_STREAM_OPEN_TIMEOUT_S
    from libp2pia.net.host import guarded

    class StuckStream:
        async def close(self) -> None:
            await trio.sleep_forever()

        async def reset(self) -> None:
            await trio.sleep_forever()

    async def handler(stream) -> None:  # noqa: ANN001
        if fails:
            raise RuntimeError("boom")

    start = trio.current_time()
    with trio.fail_after(DEFAULT_STREAM_OPEN_TIMEOUT_S * 3):
        await guarded(handler, "test")(StuckStream())  # type: ignore[arg-type]
    assert trio.current_time() - start == pytest.approx(DEFAULT_STREAM_OPEN_TIMEOUT_S)


async def test_yamux_window_updates_are_batched(monkeypatch) -> None:
    """200 small round trips on one stream send a handful of WINDOW_UPDATE frames, not one per
    read (py-libp2p's default); 3 MiB one way still flow (the window is granted back in time)."""
    from libp2p.stream_muxer.yamux import yamux

    assert yamux_window.install()
    sent: list[int] = []
    original = yamux.YamuxStream.send_window_update

    async def counting(self, increment: int, skip_lock: bool = False) -> None:  # noqa: ANN001
        sent.append(increment)
        await original(self, increment, skip_lock)

    async def echo_all(stream) -> None:  # noqa: ANN001
        while data := await stream.read(65536):
            await stream.write(data)

    async def count(stream) -> None:  # noqa: ANN001
        n = 0
        with contextlib.suppress(Exception):      # EOF
            while data := await stream.read(65536):
                n += len(data)
        await stream.write(b"%d" % n)

    monkeypatch.setattr(yamux.YamuxStream, "send_window_update", counting)
    with trio.fail_after(30):
        async with open_host() as server, open_host() as client:
            server.handle(ECHO, echo_all)
            server.handle(BOOM, count)
            await client.connect(server.addrs[0])
            s = await client.host.new_stream(server.peer_id, [ECHO])
            for i in range(200):
                msg = b"%05d" % i * 100                      # 500 bytes
                await s.write(msg)
                got = b""
                while len(got) < len(msg):
                    got += await s.read(len(msg) - len(got))
                assert got == msg
            assert len(sent) <= 4, sent                     # both sides: 2 x 100 KB read, 128 KiB threshold
            await s.close()
            t = await client.host.new_stream(server.peer_id, [BOOM])
            await t.write(bytes(3 << 20))                  # one way: 12 x the initial 256 KiB window
            await t.close_write()
            assert await t.read(100) == b"%d" % (3 << 20)
            await t.close()
