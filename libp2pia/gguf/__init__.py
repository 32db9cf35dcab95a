"""libp2pia.gguf"""
