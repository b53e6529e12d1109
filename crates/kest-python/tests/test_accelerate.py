"""accelerate() and decelerate() on the installed kest package."""

import json

import pytest

import kest_rs
from conftest import load

import kest  # noqa: E402
from kest.core import _core  # noqa: E402
from kest.core.framework import decorators  # noqa: E402
from kest.core.models.passport import BaggageManager, Passport, PassportVerifier  # noqa: E402

ORIGINALS = (_core.KestEntry, _core.sign_entry, BaggageManager.__dict__["pack"],
             BaggageManager.__dict__["unpack"], PassportVerifier.__dict__["verify"])


@pytest.fixture(autouse=True)
def restore():
    yield
    kest_rs.decelerate()


def current():
    return (_core.KestEntry, _core.sign_entry, BaggageManager.__dict__["pack"],
            BaggageManager.__dict__["unpack"], PassportVerifier.__dict__["verify"])


def test_accelerate_swaps_every_binding_and_decelerate_restores_them():
    kest_rs.accelerate()
    assert kest_rs.is_accelerated()
    for module in (_core, kest.core, decorators):
        assert module.KestEntry is kest_rs.KestEntry
        assert module.sign_entry is kest_rs.sign_entry
    assert kest.core.models.KestEntry is kest_rs.KestEntry
    assert current()[4] is ORIGINALS[4]  # the verifier stays unless asked
    kest_rs.accelerate(strict_verify=True)  # a second call replaces the first cleanly
    assert current()[4] is not ORIGINALS[4]
    kest_rs.decelerate()
    assert not kest_rs.is_accelerated()
    assert current() == ORIGINALS
    assert decorators.KestEntry is ORIGINALS[0] and kest.core.sign_entry is ORIGINALS[1]


def test_the_decorator_signs_through_the_rust_core():
    from kest.core.identity import LocalEd25519Provider

    provider = LocalEd25519Provider("spiffe://test/accelerated")
    import kest.core as core

    core.configure(engine=core.MockPolicyEngine(allow_all=True), identity=provider)
    kest_rs.accelerate()
    seen = []
    original = kest_rs.sign_entry

    @core.kest_verified(policy="p")
    def step():
        return "ok"

    decorators.sign_entry = lambda entry, prov: seen.append(type(entry)) or original(entry, prov)
    try:
        assert step() == "ok"
    finally:
        decorators.sign_entry = kest_rs.sign_entry
    assert seen == [kest_rs.KestEntry]


def test_strict_verify_refuses_what_the_package_lets_through(keys, key):
    cases = {c["name"]: c for c in load("tampered.json")["cases"]}
    spliced = Passport(entries=json.loads(cases["foreign_root_spliced_at_end"]["serialized"]))

    class WithPublicKey:
        def __init__(self):
            from cryptography.hazmat.primitives.asymmetric import ed25519

            self.public_key = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(key["public_key_hex"]))

    providers = {key["principal"]: WithPublicKey()}
    assert PassportVerifier.verify(spliced, providers) is True  # the package's verdict
    kest_rs.accelerate(strict_verify=True)
    with pytest.raises(ValueError) as caught:
        PassportVerifier.verify(spliced, providers)
    assert isinstance(caught.value, kest_rs.VerificationError)
    good = Passport(entries=json.loads(load("chain_3.json")["serialized"]))
    assert PassportVerifier.verify(good, providers) is True


def test_unpack_keeps_the_package_recovery_unless_strict():
    broken = {"kest.passport_z": "!!!"}
    kest_rs.accelerate()
    assert BaggageManager.unpack(broken.get).entries == []
    with pytest.raises(RuntimeError, match="F-GC-01"):
        BaggageManager.unpack({"kest.claim_check": "x"}.get)
    kest_rs.accelerate(strict_verify=True)
    with pytest.raises(kest_rs.BaggageError):
        BaggageManager.unpack(broken.get)
