"""topodnn: the topology of what deep networks learn."""

__version__ = "0.1.0"
