"""Retention and destruction: policies from contracts, the due list, crypto-shredding, certificates."""
