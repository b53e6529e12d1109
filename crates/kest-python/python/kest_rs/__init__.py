"""kest_rs: the Kest for Rust core for Python.

Use it directly (``canonicalize``, ``KestEntry``, ``sign_entry``, ``Signer``, ``verify``,
``pack_baggage``, ``unpack_baggage``), or call ``accelerate()`` once to move an installed
``kest`` 0.3 package onto it without changing the application.
"""

from kest_rs._errors import (
    BaggageError,
    CanonicalizationError,
    FloatDomainError,
    IntegerDomainError,
    KeyRejected,
    SigningError,
    VerificationError,
)
from kest_rs._native import (
    RUST_CORE_VERSION,
    KestEntry,
    Signer,
    canonicalize,
    pack_baggage,
    sign_entry,
    unpack_baggage,
    verify,
)
from kest_rs._accelerate import accelerate, decelerate, is_accelerated

__all__ = [
    "RUST_CORE_VERSION",
    "BaggageError",
    "CanonicalizationError",
    "FloatDomainError",
    "IntegerDomainError",
    "KestEntry",
    "KeyRejected",
    "Signer",
    "SigningError",
    "VerificationError",
    "accelerate",
    "canonicalize",
    "decelerate",
    "is_accelerated",
    "pack_baggage",
    "sign_entry",
    "unpack_baggage",
    "verify",
]
