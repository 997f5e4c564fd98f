"""Signed, reproducible releases: one tar with the appliance wheel, every dependency wheel, a lock with
hashes and a manifest, signed with Ed25519; built from a checkout, checked before anything is unpacked.

Below `system` and `fleet` (the `update` command verifies with it), above `providers` (secrets by reference).
"""
