"""Mamba worker."""
