"""Type stubs for kest_rs, the Kest for Rust core for Python."""

from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Union

RUST_CORE_VERSION: str

class CanonicalizationError(ValueError): ...
class IntegerDomainError(CanonicalizationError): ...
class FloatDomainError(CanonicalizationError): ...

class VerificationError(ValueError):
    index: Optional[int]
    entry_id: Optional[str]
    cause: str

class KeyRejected(ValueError): ...
class SigningError(RuntimeError): ...
class BaggageError(ValueError): ...

class _Provider(Protocol):
    def sign(self, payload: bytes) -> str: ...

class _ClaimStore(Protocol):
    def set(self, key: str, value: str) -> Any: ...
    def get(self, key: str) -> Optional[str]: ...

JsonValue = Union[None, bool, int, float, str, List[Any], Dict[str, Any]]

def canonicalize(obj: JsonValue) -> bytes: ...

class KestEntry:
    entry_id: str
    operation: str
    classification: str
    trust_score: int
    parent_ids: List[str]
    labels: Dict[str, Any]
    added_taints: List[str]
    removed_taints: List[str]
    taints: List[str]
    schema_version: str
    runtime_name: str
    runtime_version: str
    policy_context: Dict[str, Any]
    _timestamp_ms: int
    _input_hash: str
    _content_hash: str
    _environment: Dict[str, str]
    _otel_context: Dict[str, str]
    _metadata: Optional[Any]
    def __init__(
        self,
        entry_id: str,
        operation: str,
        classification: str,
        trust_score: int,
        parent_ids: Optional[List[str]] = None,
        labels: Optional[Dict[str, Any]] = None,
        added_taints: Optional[List[str]] = None,
        removed_taints: Optional[List[str]] = None,
        taints: Optional[List[str]] = None,
        schema_version: Optional[str] = None,
        runtime_name: Optional[str] = None,
        runtime_version: Optional[str] = None,
        policy_context: Optional[Mapping[str, Any]] = None,
        *,
        timestamp_ms: Optional[int] = None,
    ) -> None: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def input_hash(self) -> str: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def environment(self) -> Dict[str, str]: ...
    @property
    def otel_context(self) -> Dict[str, str]: ...
    @property
    def metadata(self) -> Optional[Any]: ...

class Signer:
    @staticmethod
    def from_seed(seed: bytes, principal: str) -> "Signer": ...
    @staticmethod
    def from_jwk(jwk: Mapping[str, Any], principal: Optional[str] = None) -> "Signer": ...
    @staticmethod
    def generate(principal: str) -> "Signer": ...
    @property
    def principal(self) -> str: ...
    def get_identity(self) -> str: ...
    def public_jwk(self) -> Dict[str, str]: ...
    def sign(self, payload: bytes) -> str: ...

def sign_entry(entry: Any, provider: Union[Signer, _Provider]) -> str: ...
def verify(
    passport: Union[Sequence[str], str],
    keys: Mapping[str, Union[Mapping[str, Any], str]],
    *,
    expect_tip: Optional[str] = None,
    strict: Optional[bool] = None,
    store: Optional[_ClaimStore] = None,
) -> Dict[str, Any]: ...
def pack_baggage(
    entries: Sequence[str],
    store: Optional[_ClaimStore] = None,
    *,
    threshold: int = 4096,
    oversize: str = "error",
) -> Dict[str, str]: ...
def unpack_baggage(
    members: Union[Mapping[str, str], Callable[[str], Optional[str]]],
    store: Optional[_ClaimStore] = None,
) -> List[str]: ...
def accelerate(strict_verify: bool = False) -> None: ...
def decelerate() -> None: ...
def is_accelerated() -> bool: ...
