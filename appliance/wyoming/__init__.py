"""Wyoming services: the device's speech-to-text, text-to-speech, wake phrase and agent, served to Home
Assistant (or any Wyoming client) over the Wyoming protocol from the appliance's own process and engines.

Layer: beside `transports/` (it is where audio and text come from and go to over the network); it is handed
the loaded providers and a text conversation by the composition root and never builds engines itself.
"""
