"""Volumes over time: spikes, digests, charts and export."""
