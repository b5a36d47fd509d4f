"""Exceptions shared by all domains."""

from __future__ import annotations

__all__ = ["ParasampleError", "NumericalError", "MissingExtraError", "require"]


class ParasampleError(Exception):
    """Base class of the library's own exceptions."""


class NumericalError(ParasampleError, ArithmeticError):
    """Numerical trouble detected during sampling (e.g. weights that vanish); the message
    names a remedy. Never silently replaced by a wrong sample."""


class MissingExtraError(ParasampleError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency lazily or raise :class:`MissingExtraError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            f"{module!r} is needed here; install it with: pip install \"parasample[{extra}]\""
        ) from exc
