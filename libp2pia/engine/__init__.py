"""libp2pia.engine"""
