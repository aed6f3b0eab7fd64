"""Spine Green v0 reference platform: the system under test of the embedded profile.

It implements docs/platform-contract.md and never imports the harness.
"""
