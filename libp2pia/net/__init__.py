"""libp2pia.net"""
