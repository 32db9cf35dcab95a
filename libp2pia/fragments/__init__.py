"""libp2pia.fragments"""
