"""libp2pia.wire"""
