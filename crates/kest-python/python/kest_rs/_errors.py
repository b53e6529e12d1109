"""Exceptions raised by kest_rs.

The canonicalization errors derive from the ``rfc8785`` package's classes when it is
installed, so code written against ``rfc8785.dumps`` catches them unchanged.
"""

try:  # pragma: no cover - depends on the environment
    import rfc8785 as _rfc8785

    _CanonBase = _rfc8785.CanonicalizationError
    _IntegerBase = _rfc8785.IntegerDomainError
    _FloatBase = _rfc8785.FloatDomainError
except ImportError:  # pragma: no cover
    _CanonBase = ValueError
    _IntegerBase = ValueError
    _FloatBase = ValueError


class CanonicalizationError(_CanonBase):
    """A value RFC 8785 cannot represent: a non-string key, a lone surrogate, an
    unsupported type, or nesting deeper than 128 levels."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)


class IntegerDomainError(CanonicalizationError, _IntegerBase):
    """An integer outside ±(2**53 - 1)."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)


class FloatDomainError(CanonicalizationError, _FloatBase):
    """NaN or an infinity."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)


class VerificationError(ValueError):
    """A passport that does not verify.

    ``index`` is the position of the entry at fault and ``entry_id`` its id (both
    ``None`` when the fault concerns the passport as a whole); ``cause`` says what is
    wrong. It is a ``ValueError``, as the Python package's verifier raises.
    """

    index = None
    entry_id = None
    cause = ""


class KeyRejected(ValueError):
    """A key, seed or JWK that cannot be used: wrong length, degenerate, malformed, or
    declared for something other than signatures."""


class SigningError(RuntimeError):
    """A signature could not be made. No entry is produced."""


class BaggageError(ValueError):
    """Baggage members that cannot be packed or read."""
