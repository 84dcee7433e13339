"""FINO: Flow Matching with Injected Noise for offline-to-online RL; FQL is its special case."""

__version__ = "0.1.0"
