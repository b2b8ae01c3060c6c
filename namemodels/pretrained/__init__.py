"""Pretrained models shipped with the package (weights, vocab, model cards)."""
