"""Signed, reproducible releases: one tar with the appliance wheel, every dependency wheel, a lock with
hashes and a manifest, signed with Ed25519; built from a checkout, checked before anything is unpacked.

Below `fleet` (the `update` command verifies with it) and above `config.py` (the trusted keys).
"""
