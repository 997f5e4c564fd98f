"""Simulated devices: the real fleet code with a stand-in conversation, for tests and benchmarks."""
