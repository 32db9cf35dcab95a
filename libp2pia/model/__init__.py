"""libp2pia.model"""
