"""Mamba client."""
