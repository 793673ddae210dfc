"""Example content of the eight model municipalities and the hub (see README.md)."""
