"""Repeat-perpetrator matching: keyed tokens of perpetrator identifiers, one code path (docs/matching.md)."""
