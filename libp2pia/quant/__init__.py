"""libp2pia.quant"""
