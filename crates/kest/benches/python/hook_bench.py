"""The Python package's costs for the measurements `cargo xtask bench --compare-python`
compares with: the decorator at passport depths 0 and 50, and baggage pack/unpack of 10
and 50 entries. Prints one JSON object of microseconds per operation (median of runs).

Usage: hook_bench.py
"""
import json
import statistics
import time

from opentelemetry import baggage, context as otel_context

from kest.core import configure
from kest.core.engines.engine import MockPolicyEngine
from kest.core.framework.cache import SimpleCache
from kest.core.framework.decorators import kest_verified
from kest.core.identity.providers.local import LocalEd25519Provider
from kest.core.models.passport import BaggageManager

cache = SimpleCache()
configure(engine=MockPolicyEngine(True), identity=LocalEd25519Provider("spiffe://kest.bench/agent"), cache=cache)


@kest_verified(policy="invoke")
def step():
    return None


def context_with_passport(depth):
    """A context whose baggage holds a passport of `depth` entries, built by the decorator."""
    ctx = otel_context.get_current()
    token = otel_context.attach(ctx)
    passport_ctx = ctx
    try:
        for _ in range(depth):
            # Each call leaves its passport in the context it attached; keep it for the next.
            @kest_verified(policy="invoke")
            def grow():
                return otel_context.get_current()

            passport_ctx = grow()
            otel_context.detach(token)
            token = otel_context.attach(passport_ctx)
    finally:
        otel_context.detach(token)
    return passport_ctx


def per_call_us(fn, repeat=5, number=200):
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - started) / number * 1e6)
    return statistics.median(samples)


def decorator_at(depth):
    ctx = context_with_passport(depth)
    token = otel_context.attach(ctx)
    try:
        number = 200 if depth < 20 else 40
        return per_call_us(step, number=number)
    finally:
        otel_context.detach(token)


def passport_of(depth):
    ctx = context_with_passport(depth)
    return BaggageManager.unpack(lambda key: baggage.get_baggage(key, context=ctx), cache=cache)


results = {"hook_depth_0": decorator_at(0), "hook_depth_50": decorator_at(50)}
for depth in (10, 50):
    passport = passport_of(depth)
    assert len(passport.entries) == depth, len(passport.entries)
    packed = BaggageManager.pack(passport, cache)
    results[f"baggage_pack_{depth}"] = per_call_us(lambda: BaggageManager.pack(passport, cache), number=100)
    results[f"baggage_unpack_{depth}"] = per_call_us(
        lambda: BaggageManager.unpack(packed.get, cache=cache), number=100
    )
print(json.dumps(results))
