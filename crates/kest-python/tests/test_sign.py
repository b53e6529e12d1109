"""KestEntry and sign_entry against the Python package, byte for byte."""

import threading

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import kest_rs
from conftest import load

import kest.core._core as kest_core  # noqa: E402
from kest.core.identity import LocalEd25519Provider, MockIdentityProvider, StaticIdentity  # noqa: E402


def package_provider(key):
    provider = StaticIdentity(key["principal"])
    provider.private_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["seed_hex"]))
    return provider


def test_deterministic_vectors_sign_identically_through_every_path(key, signer):
    cases = load("sign_entry_deterministic.json")["cases"]
    assert len(cases) == 2
    provider = package_provider(key)
    for case in cases:
        entry = kest_rs.KestEntry(**case["kest_entry_kwargs"], timestamp_ms=case["timestamp_ms"])
        assert kest_rs.sign_entry(entry, signer) == case["jws"]
        # The package's own provider: its key is lifted into Rust.
        assert kest_rs.sign_entry(entry, provider) == case["jws"]
        # The package's own entry class, signed by the Rust function.
        theirs = kest_core.KestEntry(**case["kest_entry_kwargs"])
        theirs._timestamp_ms = case["timestamp_ms"]
        assert kest_rs.sign_entry(theirs, provider) == case["jws"]
        # And ours through the package's sign_entry.
        assert kest_core.sign_entry(entry, provider) == case["jws"]


def test_the_entry_has_the_dataclass_defaults_validation_and_properties():
    ours = kest_rs.KestEntry("id", "op", "DATA", 40, policy_context={"app_policies": ["p"], "extra": 1})
    theirs = kest_core.KestEntry("id", "op", "DATA", 40, policy_context={"app_policies": ["p"], "extra": 1})
    for name in [
        "entry_id", "operation", "classification", "trust_score", "parent_ids", "labels",
        "added_taints", "removed_taints", "taints", "schema_version", "runtime_name",
        "runtime_version", "policy_context", "input_hash", "content_hash", "environment",
        "otel_context", "metadata",
    ]:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert abs(ours.timestamp_ms - theirs.timestamp_ms) < 60_000
    with pytest.raises(ValueError, match="Invalid classification: secret"):
        kest_rs.KestEntry("id", "op", "secret", 1)
    with pytest.raises(AttributeError):
        ours.timestamp_ms = 5  # a read-only property, as in the package
    ours._timestamp_ms = 5
    assert ours.timestamp_ms == 5
    assert ours == kest_rs.KestEntry("id", "op", "data", 40, policy_context={"app_policies": ["p"]})
    assert "operation='op'" in repr(ours)


def test_fields_keep_the_objects_given_so_later_mutation_is_signed(signer, keys, key):
    labels = {"principal": key["principal"]}
    entry = kest_rs.KestEntry("01900000-0000-7000-8000-00000000000a", "op", "system", 100,
                              parent_ids=["0"], labels=labels, timestamp_ms=1)
    assert entry.labels is labels
    labels["note"] = "added later"
    report = kest_rs.verify([kest_rs.sign_entry(entry, signer)], keys)
    assert report["entries"][0]["principal"] == key["principal"]
    import base64
    import json

    payload = kest_rs.sign_entry(entry, signer).split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded["labels"]["note"] == "added later"


def test_providers_whose_key_is_not_reachable_are_called_with_the_canonical_bytes():
    calls = []

    class Recording:
        def sign(self, payload):
            calls.append(payload)
            return "h.p.s"

    entry = kest_rs.KestEntry("id", "op", "system", 100, timestamp_ms=7)
    assert kest_rs.sign_entry(entry, Recording()) == "h.p.s"
    assert calls == [kest_core.rfc8785.dumps(_payload_of(entry))]
    mock = MockIdentityProvider()
    assert kest_rs.sign_entry(entry, mock) == kest_core.sign_entry(entry, mock)


def test_a_subclass_that_overrides_sign_is_honoured_not_bypassed():
    class Custom(LocalEd25519Provider):
        def sign(self, payload):
            return "custom." + payload.decode()[:5]

    entry = kest_rs.KestEntry("id", "op", "system", 100, timestamp_ms=7)
    assert kest_rs.sign_entry(entry, Custom()).startswith("custom.")


def test_a_swapped_private_key_is_picked_up(key):
    provider = StaticIdentity(key["principal"])
    entry = kest_rs.KestEntry("id", "op", "system", 100, timestamp_ms=7)
    first = kest_rs.sign_entry(entry, provider)
    provider.private_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["seed_hex"]))
    second = kest_rs.sign_entry(entry, provider)
    assert first != second
    assert second == kest_core.sign_entry(entry, provider)


def test_unsignable_payloads_raise_the_canonicalization_error(signer):
    entry = kest_rs.KestEntry("id", "op", "system", 2**60, timestamp_ms=7)
    with pytest.raises(kest_rs.IntegerDomainError):
        kest_rs.sign_entry(entry, signer)
    entry = kest_rs.KestEntry("id", "op", "system", 1, labels={"x": float("nan")})
    with pytest.raises(kest_rs.FloatDomainError):
        kest_rs.sign_entry(entry, StaticIdentity("p"))


def test_signers_from_bad_keys_are_refused_with_a_typed_error(key):
    with pytest.raises(kest_rs.KeyRejected):
        kest_rs.Signer.from_seed(b"short", "p")
    with pytest.raises(kest_rs.KeyRejected):
        kest_rs.Signer.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"})
    with pytest.raises(kest_rs.KeyRejected, match="kid"):
        kest_rs.Signer.from_jwk(dict(key["public_key_jwk"], d=_d(key)))
    with pytest.raises(kest_rs.KeyRejected):
        # A `d` that is not the private half of `x`.
        kest_rs.Signer.from_jwk(dict(key["public_key_jwk"], d=_d(key, "00" * 32), kid="p"))


def test_from_jwk_signs_like_from_seed_and_repr_hides_the_key(key, signer):
    jwk = dict(key["public_key_jwk"], d=_d(key), kid=key["principal"])
    other = kest_rs.Signer.from_jwk(jwk)
    assert other.principal == key["principal"] == other.get_identity()
    assert other.public_jwk()["x"] == key["public_key_jwk"]["x"]
    assert other.sign(b"{}") == signer.sign(b"{}")
    assert _d(key) not in repr(other) and "secret" in repr(other)


def test_signing_from_many_threads_gives_the_same_signatures(signer):
    entries = [kest_rs.KestEntry(f"id-{i}", "op", "system", 100, timestamp_ms=i) for i in range(200)]
    expected = [kest_rs.sign_entry(entry, signer) for entry in entries]
    results = {}

    def work(offset):
        results[offset] = [kest_rs.sign_entry(entry, signer) for entry in entries]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result == expected for result in results.values())


def _payload_of(entry):
    return {
        "added_taints": entry.added_taints, "classification": entry.classification,
        "content_hash": entry.content_hash, "entry_id": entry.entry_id,
        "environment": entry.environment, "input_hash": entry.input_hash,
        "labels": entry.labels, "metadata": entry.metadata, "operation": entry.operation,
        "otel_context": entry.otel_context, "parent_ids": entry.parent_ids,
        "policy_context": entry.policy_context, "removed_taints": entry.removed_taints,
        "runtime": {"name": entry.runtime_name, "version": entry.runtime_version},
        "schema_version": entry.schema_version, "taints": entry.taints,
        "timestamp_ms": entry.timestamp_ms, "trust_score": entry.trust_score,
    }


def _d(key, seed_hex=None):
    import base64

    raw = bytes.fromhex(seed_hex or key["seed_hex"])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
