"""Finite determinantal point processes (spec: shared/specs/dpp.md)."""

from .kernel import DPP, Spectrum

__all__ = ["DPP", "Spectrum"]
