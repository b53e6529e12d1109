"""kest_rs.verify on the Python package's chains and tampered variants, and the baggage
tiers against BaggageManager in both directions."""

import hashlib
import json

import pytest

import kest_rs
from conftest import load

CHAINS = ["chain_1.json", "chain_3.json", "chain_10.json"]


@pytest.mark.parametrize("name", CHAINS)
def test_python_chains_verify_in_every_input_form(name, keys):
    chain = load(name)
    entries = json.loads(chain["serialized"])
    for given in (entries, chain["serialized"]):
        report = kest_rs.verify(given, keys, expect_tip=chain["final_chain_tip"])
        assert report["tip"] == chain["final_chain_tip"]
        assert len(report["entries"]) == chain["n_entries"]
        assert [e["hash"] for e in report["entries"]] == [h["entry_sha256_hex"] for h in chain["hops"]]
        assert min(e["trust"] for e in report["entries"]) == chain["passport_min_trust_score"]
    if chain["n_entries"] > 3:
        return  # over the 8 KiB header limit inline
    header = f'kest.passport={chain["serialized"].replace(", ", ",").replace(",", "%2C").replace("[", "%5B").replace("]", "%5D").replace(chr(34), "%22")},kest.chain_tip={chain["final_chain_tip"]}'
    assert kest_rs.verify(header, keys)["tip"] == chain["final_chain_tip"]


def test_every_tampered_variant_is_refused_with_index_entry_and_cause(keys):
    tip = load("chain_3.json")["final_chain_tip"]
    cases = load("tampered.json")["cases"]
    refused = 0
    for case in cases:
        entries = json.loads(case["serialized"])
        if case["name"].startswith("baseline"):
            kest_rs.verify(entries, keys)
            continue
        expect = tip if "truncation" in case["name"] else None
        with pytest.raises(kest_rs.VerificationError) as caught:
            kest_rs.verify(entries, keys, expect_tip=expect)
        error = caught.value
        assert isinstance(error, ValueError)
        assert error.cause, case["name"]
        if "truncation" not in case["name"]:
            assert isinstance(error.index, int) and 0 <= error.index < len(entries), case["name"]
        refused += 1
    assert refused == len(cases) - 2


def test_the_failure_names_the_entry(keys):
    chain = load("chain_3.json")
    entries = json.loads(chain["serialized"])
    header, payload, signature = entries[2].split(".")
    entries[2] = f"{header}.{payload}.{'A' * len(signature)}"
    with pytest.raises(kest_rs.VerificationError) as caught:
        kest_rs.verify(entries, keys)
    assert caught.value.index == 2
    assert caught.value.entry_id == chain["hops"][2]["payload"]["entry_id"]
    assert "signature" in caught.value.cause


def test_unknown_keys_strictness_and_bad_arguments_fail_closed(keys):
    entries = json.loads(load("chain_10.json")["serialized"])
    with pytest.raises(kest_rs.VerificationError, match="no key"):
        kest_rs.verify(entries, {})
    # chain_10 raises trust without declaring it: lenient reports it, strict refuses.
    lenient = kest_rs.verify(entries, keys, strict=False)
    assert any(f["kind"] == "trust_raised" for f in lenient["findings"])
    with pytest.raises(kest_rs.VerificationError, match="without a declared"):
        kest_rs.verify(entries, keys, strict=True)
    with pytest.raises(kest_rs.KeyRejected):
        kest_rs.verify(entries, {"p": {"kty": "OKP", "crv": "Ed25519", "x": "AA"}})
    with pytest.raises(ValueError):
        kest_rs.verify(entries, keys, expect_tip="not-hex")
    with pytest.raises(TypeError):
        kest_rs.verify(12, keys)
    with pytest.raises(kest_rs.VerificationError):
        kest_rs.verify("[" * 100_000, keys)


class Store:
    def __init__(self):
        self.data = {}

    def set(self, key, value):
        self.data[key] = value

    def get(self, key):
        return self.data.get(key)


def vector_entries():
    """The longest prefix of the 60-hop chain the vectors carry whole: the last compressed one."""
    import base64
    import zlib

    cases = load("baggage.json")["cases"]
    last = max((c for c in cases if c["with_cache"]["key"] == "kest.passport_z"), key=lambda c: c["n_entries"])
    value = last["with_cache"]["value"]
    return json.loads(zlib.decompress(base64.urlsafe_b64decode(value))), cases


def test_packing_matches_the_baggage_manager_where_the_vectors_hold_the_entries():
    full, cases = vector_entries()
    covered = set()
    for case in cases:
        if case["n_entries"] > len(full):
            continue
        entries = full[: case["n_entries"]]
        expected = case["with_cache"]
        packed = kest_rs.pack_baggage(entries, Store())
        assert packed["kest.chain_tip"] == expected["chain_tip"]
        assert expected["key"] in packed, case["n_entries"]
        assert len(packed[expected["key"]]) == expected["value_size_bytes"] or expected["key"] == "kest.passport_z"
        if expected["key"] == "kest.passport":
            assert packed["kest.passport"] == expected["value"]
        covered.add(expected["key"])
        assert kest_rs.unpack_baggage(packed) == entries
        # The package's own members read back, as a dict and through a getter.
        theirs = {expected["key"]: expected["value"], "kest.chain_tip": expected["chain_tip"]}
        assert kest_rs.unpack_baggage(theirs) == entries
        assert kest_rs.unpack_baggage(theirs.get) == entries
    assert covered == {"kest.passport", "kest.passport_z"}


def incompressible(n):
    import os
    import base64

    return [base64.urlsafe_b64encode(os.urandom(600)).decode() for _ in range(n)]


def test_claim_checks_interoperate_with_the_baggage_manager_both_ways():
    import kest.core.models.passport as models
    from kest.core.framework.cache import SimpleCache

    entries = incompressible(12)
    cache = SimpleCache()
    ours = kest_rs.pack_baggage(entries, cache)
    assert "kest.claim_check" in ours
    assert models.BaggageManager.unpack(ours.get, cache=cache).entries == entries
    theirs = models.BaggageManager.pack(models.Passport(entries=entries), cache=cache)
    assert "kest.claim_check" in theirs
    assert kest_rs.unpack_baggage(theirs, cache) == entries


def test_the_baggage_manager_reads_what_we_pack_in_every_tier():
    import kest.core.models.passport as models
    full, _ = vector_entries()
    for entries in (full[:1], full, incompressible(3)):
        store = Store()
        packed = kest_rs.pack_baggage(entries, store)
        assert models.BaggageManager.unpack(packed.get, cache=store).entries == entries


def test_oversize_without_a_store_is_an_error_unless_asked_to_compress():
    entries = incompressible(12)
    with pytest.raises(kest_rs.BaggageError, match="no store"):
        kest_rs.pack_baggage(entries)
    packed = kest_rs.pack_baggage(entries, oversize="compress")
    assert len(packed["kest.passport_z"]) > 4096
    assert kest_rs.unpack_baggage(packed) == entries
    with pytest.raises(ValueError):
        kest_rs.pack_baggage(entries, oversize="drop")


def test_hostile_members_fail_closed():
    big = json.dumps(["a" * 100] * 10)
    tip = hashlib.sha256(b"a" * 100).hexdigest()
    with pytest.raises(kest_rs.BaggageError, match="claim"):
        kest_rs.unpack_baggage({"kest.claim_check": "id", "kest.chain_tip": tip})
    with pytest.raises(kest_rs.BaggageError, match="not found|not in"):
        kest_rs.unpack_baggage({"kest.claim_check": "id", "kest.chain_tip": tip}, Store())
    with pytest.raises(kest_rs.BaggageError):
        kest_rs.unpack_baggage({"kest.passport_z": "!!!not base64", "kest.chain_tip": tip})
    import base64
    import zlib

    bomb = base64.urlsafe_b64encode(zlib.compress(b"[" + b" " * 50_000_000 + b"]", 9)).decode()
    with pytest.raises(kest_rs.BaggageError, match="limit"):
        kest_rs.unpack_baggage({"kest.passport_z": bomb})
    with pytest.raises(kest_rs.BaggageError, match="tip"):
        kest_rs.unpack_baggage({"kest.passport": big, "kest.chain_tip": "ab" * 32})
    with pytest.raises(kest_rs.BaggageError):
        kest_rs.unpack_baggage({"kest.passport": '["a", 1]'})
    with pytest.raises(kest_rs.BaggageError):
        kest_rs.unpack_baggage({"kest.passport": 5})
    assert kest_rs.unpack_baggage({}) == []
    assert kest_rs.unpack_baggage({"kest.passport": big, "kest.chain_tip": tip}) == ["a" * 100] * 10
