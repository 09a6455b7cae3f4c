"""Benchmarks: worker (runs on the device), harness (fresh processes, interleaving), stats."""
