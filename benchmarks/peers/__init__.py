"""Peer codes run side by side with ours on the same case (case-file writers
and runners)."""
