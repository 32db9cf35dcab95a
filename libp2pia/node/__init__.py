"""libp2pia.node"""
