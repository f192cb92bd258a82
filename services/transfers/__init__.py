"""Transfers: a skeleton this round; its process lands next round on the same kit."""
