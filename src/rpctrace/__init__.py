"""rpctrace: follow a Windows RPC call across the process boundary and tell why it failed."""

__version__ = "0.1.0"
