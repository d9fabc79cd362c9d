"""Synthetic trace writer: builds ETW files (and their compressed buffers) for tests and demos."""
