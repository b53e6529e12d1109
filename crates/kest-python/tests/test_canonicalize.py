"""kest_rs.canonicalize against rfc8785.dumps: the shared vectors, then random values."""

import json
import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

import kest_rs
from conftest import load

ERRORS = {
    "CanonicalizationError": kest_rs.CanonicalizationError,
    "IntegerDomainError": kest_rs.IntegerDomainError,
    "FloatDomainError": kest_rs.FloatDomainError,
}


def python_value(case):
    if "input_python_repr" in case:
        return eval(case["input_python_repr"], {"nan": math.nan, "inf": math.inf, "float": float})
    return json.loads(case["input_json"])


def test_every_jcs_vector_gives_the_same_bytes_or_the_same_rejection():
    cases = load("jcs.json")["cases"]
    assert len(cases) > 20
    for case in cases:
        try:
            value = python_value(case)
        except ValueError:
            continue  # lone surrogates in text: json.loads itself refuses some
        if "error" in case:
            expected = case["error"].split(":")[0]
            with pytest.raises(ERRORS.get(expected, kest_rs.CanonicalizationError)):
                kest_rs.canonicalize(value)
        else:
            assert kest_rs.canonicalize(value) == bytes.fromhex(case["output_hex"]), case["name"]


@pytest.mark.parametrize(
    "value, error",
    [
        (2**53, kest_rs.IntegerDomainError),
        (-(2**53), kest_rs.IntegerDomainError),
        (10**400, kest_rs.IntegerDomainError),
        (math.nan, kest_rs.FloatDomainError),
        (-math.inf, kest_rs.FloatDomainError),
        ({1: "a"}, kest_rs.CanonicalizationError),
        ({"a": object()}, kest_rs.CanonicalizationError),
        ("\ud800", kest_rs.CanonicalizationError),
        ({"\udfff": 1}, kest_rs.CanonicalizationError),
        (b"bytes", kest_rs.CanonicalizationError),
    ],
)
def test_rejections_match_rfc8785_and_are_its_exception_classes(value, error):
    with pytest.raises(error):
        kest_rs.canonicalize(value)
    # Code written against rfc8785 catches ours unchanged.
    with pytest.raises(rfc8785.CanonicalizationError):
        kest_rs.canonicalize(value)
    if value != {"\udfff": 1}:  # rfc8785 leaks a UnicodeEncodeError for this one
        with pytest.raises(rfc8785.CanonicalizationError):
            rfc8785.dumps(value)


def test_the_safe_integer_bounds_themselves_are_accepted():
    assert kest_rs.canonicalize([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"


def test_deep_and_self_containing_structures_fail_closed_without_crashing():
    deep = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(kest_rs.CanonicalizationError, match="nesting deeper"):
        kest_rs.canonicalize(deep)
    cyclic = {}
    cyclic["self"] = cyclic
    with pytest.raises(kest_rs.CanonicalizationError):
        kest_rs.canonicalize(cyclic)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_random_values_canonicalize_exactly_as_rfc8785_does(value):
    assert kest_rs.canonicalize(value) == rfc8785.dumps(value)
