"""Random spanning trees (spec: shared/specs/trees.md)."""
