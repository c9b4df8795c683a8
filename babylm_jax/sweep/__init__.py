"""Sweeps: several variants of a config trained and evaluated in turn, and their table."""
