"""libp2pia.sim"""
