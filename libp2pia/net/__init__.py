"""libp2pia.net: the py-libp2p shell around libp2pia.wire.

| module      | job                                                                  |
|-------------|----------------------------------------------------------------------|
| host        | host factory (TCP + Noise + yamux), identity, guarded handlers       |
| framed      | length-prefixed frames on a stream, timeouts, error translation      |
| rpc         | ``/libp2pia/compute/1.0.0``: ComputeService server, ComputeClient    |
| transfer    | ``/libp2pia/fragment/1.0.0``: fetch fragments, hash-checked          |
| dht         | Kademlia: fragment providers, validated manifest records             |
| gossip      | gossipsub for control messages, Heartbeats on a topic per model      |
| peers       | PeerTable: alive / suspect / dead (pure)                             |
| relay       | circuit relay v2 hop and client, AutoNAT, DCUtR                      |
| routing     | plan_phase: one replica per call, grouped per peer (pure)            |

Import the submodules directly (``from libp2pia.net.rpc import ComputeClient``):
importing libp2p costs ~1 s, so this package imports nothing eagerly.
"""
