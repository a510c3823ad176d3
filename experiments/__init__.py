"""Entry points (Hydra apps) and their configs; the only package that imports hydra."""
