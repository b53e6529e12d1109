"""The pure-Python package against kest_rs, for `cargo xtask bench --compare-python`.

Prints one JSON object: {name: {"python": µs, "rust": µs}} per operation (median of
runs), and the signing throughput on 1 and 2 threads.
"""
import json
import statistics
import threading
import time

import uuid_utils
from cryptography.hazmat.primitives.asymmetric import ed25519
from opentelemetry import context as otel_context

import kest_rs
from kest.core import _core, configure
from kest.core.engines.engine import MockPolicyEngine
from kest.core.framework.cache import SimpleCache
from kest.core.framework.decorators import kest_verified
from kest.core.identity.providers.local import StaticIdentity
from kest.core.models.passport import BaggageManager, Passport, PassportVerifier

PRINCIPAL = "spiffe://kest.bench/agent"
SEED = bytes(range(32))


def per_call_us(fn, repeat=5, number=200):
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - started) / number * 1e6)
    return statistics.median(samples)


provider = StaticIdentity(PRINCIPAL)
provider.private_key = ed25519.Ed25519PrivateKey.from_private_bytes(SEED)
signer = kest_rs.Signer.from_seed(SEED, PRINCIPAL)
results = {}


def entry_kwargs(i, parent):
    return dict(entry_id=str(uuid_utils.uuid7()), operation=f"step{i}", classification="system",
                trust_score=100, parent_ids=[parent], labels={"principal": PRINCIPAL})


kwargs = entry_kwargs(0, "0")
results["sign_entry"] = {
    "python": per_call_us(lambda: _core.sign_entry(_core.KestEntry(**kwargs), provider), number=500),
    "rust": per_call_us(lambda: kest_rs.sign_entry(kest_rs.KestEntry(**kwargs), provider), number=500),
}


def chain(n):
    import hashlib

    entries, parent = [], "0"
    for i in range(n):
        jws = kest_rs.sign_entry(kest_rs.KestEntry(**entry_kwargs(i, parent)), signer)
        entries.append(jws)
        parent = hashlib.sha256(jws.encode()).hexdigest()
    return entries


class PublicKeyProvider:
    public_key = ed25519.Ed25519PrivateKey.from_private_bytes(SEED).public_key()


keys = {PRINCIPAL: signer.public_jwk()}
for n in (100, 1000):
    entries = chain(n)
    passport = Passport(entries=entries)
    number = 20 if n == 100 else 3
    results[f"verify_{n}"] = {
        "python": per_call_us(lambda: PassportVerifier.verify(passport, {PRINCIPAL: PublicKeyProvider()}), number=number),
        "rust": per_call_us(lambda: kest_rs.verify(entries, keys), number=number),
    }

cache = SimpleCache()
for n in (10, 50):
    entries = chain(n)
    passport = Passport(entries=entries)
    theirs = BaggageManager.pack(passport, cache)
    ours = kest_rs.pack_baggage(entries, cache)
    results[f"baggage_pack_{n}"] = {
        "python": per_call_us(lambda: BaggageManager.pack(passport, cache), number=100),
        "rust": per_call_us(lambda: kest_rs.pack_baggage(entries, cache), number=100),
    }
    results[f"baggage_unpack_{n}"] = {
        "python": per_call_us(lambda: BaggageManager.unpack(theirs.get, cache=cache), number=100),
        "rust": per_call_us(lambda: kest_rs.unpack_baggage(ours, cache), number=100),
    }


# The decorator, plain and under accelerate().
configure(engine=MockPolicyEngine(True), identity=provider, cache=cache)


@kest_verified(policy="invoke")
def step():
    return None


def context_with_passport(depth):
    ctx = otel_context.get_current()
    for _ in range(depth):
        token = otel_context.attach(ctx)
        try:
            @kest_verified(policy="invoke")
            def grow():
                return otel_context.get_current()

            ctx = grow()
        finally:
            otel_context.detach(token)
    return ctx


def decorator_at(depth):
    ctx = context_with_passport(depth)
    token = otel_context.attach(ctx)
    try:
        return per_call_us(step, number=200 if depth < 20 else 40)
    finally:
        otel_context.detach(token)


for depth in (0, 50):
    plain = decorator_at(depth)
    kest_rs.accelerate()
    try:
        fast = decorator_at(depth)
    finally:
        kest_rs.decelerate()
    results[f"decorator_depth_{depth}"] = {"python": plain, "rust": fast}


# Signing throughput with a reachable key: 1 thread, then 2 threads at once.
def throughput(threads, seconds=1.5):
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(slot):
        entry = kest_rs.KestEntry(**kwargs)
        n = 0
        while time.perf_counter() < stop:
            for _ in range(50):
                kest_rs.sign_entry(entry, provider)
            n += 50
        counts[slot] = n

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / seconds


results["sign_throughput"] = {"one_thread": throughput(1), "two_threads": throughput(2)}
print(json.dumps(results))
