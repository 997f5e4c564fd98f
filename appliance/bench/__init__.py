"""`appliance bench`: the latency, memory, listening, tool-use, fallback, wake-phrase and call measures."""
