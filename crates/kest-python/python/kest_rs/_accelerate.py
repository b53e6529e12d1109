"""``accelerate()``: moves an installed ``kest`` 0.3 package onto the Rust core."""

import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from kest_rs import _native
from kest_rs._errors import BaggageError, VerificationError

_lock = threading.Lock()
# (owner, attribute name, original value), in the order they were replaced.
_patched: List[Tuple[Any, str, Any]] = []
_strict = False


def is_accelerated() -> bool:
    """Whether ``accelerate()`` is in effect."""
    return bool(_patched)


def _replace(owner: Any, name: str, value: Any) -> None:
    _patched.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)))
    setattr(owner, name, value)


def _pack(passport: Any, cache: Optional[Any] = None) -> Dict[str, str]:
    from kest.core.models.passport import BaggageManager

    return _native.pack_baggage(
        list(passport.entries),
        cache,
        threshold=BaggageManager.MAX_BAGGAGE_SIZE,
        oversize="compress",
    )


class _Fetched:
    """A store that answers with the record already fetched, so the cache is read once."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def get(self, _key: str) -> Any:
        return self._value


def _unpack(baggage_func: Callable[[str], Any], cache: Optional[Any] = None) -> Any:
    from kest.core.models.passport import Passport

    # The package's fail-closed claim-check errors, with its messages, come first.
    claim_id = baggage_func("kest.claim_check")
    store = None
    if claim_id:
        if not cache:
            raise RuntimeError(
                f"[F-GC-01] Kest lineage claim_check {claim_id} found but no cache "
                "backend configured for retrieval. Failing closed."
            )
        cached = cache.get(f"kest.claim.{claim_id}")
        if not cached:
            raise RuntimeError(
                f"[F-GC-02] Kest lineage claim_check {claim_id} present but record "
                "NOT FOUND in cache (TTL expired or cache evicted). Failing closed."
            )
        store = _Fetched(cached)
    members: Any = baggage_func
    if not _strict:
        # The package reads one member, in this order, and ignores `kest.chain_tip` (which
        # it may write as several heads, "h1, h2"); so does the compatible mode.
        members = {}
        for key in ("kest.claim_check", "kest.passport_z", "kest.passport"):
            value = claim_id if key == "kest.claim_check" else baggage_func(key)
            if value:
                members[key] = value
                break
    try:
        entries = _native.unpack_baggage(members, store)
    except BaggageError:
        if _strict:
            raise
        # The package's documented recovery: an unreadable member is an empty passport.
        return Passport()
    return Passport(entries=entries)


def _public_jwk(provider: Any) -> Optional[Dict[str, str]]:
    """The JWK of a provider's ``public_key`` (a ``cryptography`` Ed25519 key), if any."""
    if isinstance(provider, _native.Signer):
        return provider.public_jwk()
    public_key = getattr(provider, "public_key", None)
    if public_key is None:
        return None
    import base64

    from cryptography.hazmat.primitives.asymmetric import ed25519

    if not isinstance(public_key, ed25519.Ed25519PublicKey):
        return None
    raw = public_key.public_bytes_raw()
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def _strict_verify(passport: Any, providers: Dict[str, Any]) -> bool:
    keys = {}
    for principal, provider in providers.items():
        jwk = _public_jwk(provider)
        if jwk is not None:
            keys[principal] = jwk
    _native.verify(list(passport.entries), keys)
    return True


def accelerate(strict_verify: bool = False) -> None:
    """Switches the installed ``kest`` package to the Rust core.

    Replaces, wherever the package's modules hold them, ``kest.core._core.KestEntry``
    and ``sign_entry`` (so canonicalization and signing run in Rust, with the GIL
    released when the provider's key is reachable), and ``BaggageManager.pack`` and
    ``unpack``. The package's documented behaviour is kept.

    With ``strict_verify=True``, ``PassportVerifier.verify`` is also replaced by the
    strict Rust verifier, and an unreadable baggage member raises ``BaggageError``
    instead of yielding an empty passport. See the "Kest from Python" page for every
    behaviour that changes.

    Calling it again first undoes the previous call. ``decelerate()`` restores the
    originals.
    """
    global _strict
    import kest.core._core as core
    from kest.core.models.passport import BaggageManager, PassportVerifier

    with _lock:
        _undo()
        originals = {id(core.KestEntry): _native.KestEntry, id(core.sign_entry): _native.sign_entry}
        for name, module in list(sys.modules.items()):
            if module is None or not (name == "kest" or name.startswith("kest.")):
                continue
            for attribute, value in list(vars(module).items()):
                replacement = originals.get(id(value))
                if replacement is not None:
                    _replace(module, attribute, replacement)
        _replace(BaggageManager, "pack", staticmethod(_pack))
        _replace(BaggageManager, "unpack", staticmethod(_unpack))
        _strict = strict_verify
        if strict_verify:
            _replace(PassportVerifier, "verify", staticmethod(_strict_verify))


def _undo() -> None:
    global _strict
    while _patched:
        owner, name, original = _patched.pop()
        setattr(owner, name, original)
    _strict = False


def decelerate() -> None:
    """Restores everything ``accelerate()`` replaced."""
    with _lock:
        _undo()


__all__ = ["accelerate", "decelerate", "is_accelerated", "VerificationError"]
