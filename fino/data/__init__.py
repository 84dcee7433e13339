"""Offline datasets and replay buffers."""
