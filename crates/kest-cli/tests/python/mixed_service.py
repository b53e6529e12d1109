"""The Python half of the mixed deployment test (`tests/it/mixed_live.rs`).

A FastAPI service built only from the kest package's own parts: `KestMiddleware` reads
inbound baggage, `@kest_verified` signs one entry per protected step, and an httpx client
with `KestHttpxInterceptor` carries the lineage to the next service. Nothing here encodes
or decodes a passport by hand: what crosses the wire is what the package sends and reads.

- `POST /start?depth=N` runs N nested protected steps (a chain of N entries), the
  innermost of which calls the Rust service's `POST /tool`; it answers with the Rust
  service's answer and the `baggage` header it sent.
- `POST /callback` (which the Rust service calls) runs one protected step, reads the
  passport it now holds, has the package's `PassportVerifier` check it with both
  services' public keys, and answers with the passport, the verdict and what it saw.

Usage: mixed_service.py PORT, with the environment:
  KEST_MIXED_SEED_HEX, KEST_MIXED_PRINCIPAL    this service's Ed25519 seed and principal
  KEST_MIXED_RUST_URL                          the Rust service
  KEST_MIXED_RUST_PRINCIPAL, KEST_MIXED_RUST_PUBLIC_HEX
  KEST_MIXED_EXPECT_USER, _AGENT, _TASK        what the policy requires of the caller
  KEST_REDIS_URL                               the claim-check store both runtimes share
"""

import hashlib
import os
import sys

import httpx
import redis
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fastapi import FastAPI, Request
from opentelemetry import baggage

import kest.core
from kest.core import StaticIdentity
from kest.core.engines.engine import PolicyEngine
from kest.core.framework.cache import CacheProvider
from kest.core.framework.decorators import get_active_cache, kest_verified
from kest.core.framework.ext import KestHttpxInterceptor, KestMiddleware
from kest.core.models.passport import BaggageManager, Passport, PassportVerifier

ENV = os.environ
CLAIM_TTL_SECONDS = 300


class RedisCache(CacheProvider):
    """Claim checks in the Redis server the Rust service uses too."""

    def __init__(self, url):
        self.client = redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)

    def get(self, key):
        return self.client.get(key)

    def set(self, key, value, ttl=None):
        self.client.set(key, value, ex=ttl or CLAIM_TTL_SECONDS)


class CallerPolicy(PolicyEngine):
    """Allows a step only for the expected user, agent and task: a step that runs proves
    that the caller's identity reached this service's policy."""

    def __init__(self):
        self.expected = {
            "user": ENV["KEST_MIXED_EXPECT_USER"],
            "agent": ENV["KEST_MIXED_EXPECT_AGENT"],
            "task": ENV["KEST_MIXED_EXPECT_TASK"],
        }

    def evaluate(self, entry_id, policy_names, context):
        return all(context.get(key) == value for key, value in self.expected.items())


class KeyHolder:
    """What `PassportVerifier` needs of a provider to check signatures: `public_key`."""

    def __init__(self, public_key):
        self.public_key = public_key


def identity():
    provider = StaticIdentity(ENV["KEST_MIXED_PRINCIPAL"])
    provider.private_key = Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(ENV["KEST_MIXED_SEED_HEX"])
    )
    return provider


IDENTITY = identity()
kest.core.configure(
    engine=CallerPolicy(),
    identity=IDENTITY,
    cache=RedisCache(ENV["KEST_REDIS_URL"]),
)
PROVIDERS = {
    ENV["KEST_MIXED_PRINCIPAL"]: KeyHolder(IDENTITY.private_key.public_key()),
    ENV["KEST_MIXED_RUST_PRINCIPAL"]: KeyHolder(
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(ENV["KEST_MIXED_RUST_PUBLIC_HEX"]))
    ),
}

app = FastAPI()
app.add_middleware(KestMiddleware)


def baggage_keys(request):
    header = request.headers.get("baggage", "")
    return sorted({part.split("=", 1)[0].strip() for part in header.split(",") if "=" in part})


def current_caller():
    return {key: baggage.get_baggage(f"kest.{key}") for key in ("user", "agent", "task")}


async def call_rust():
    sent = {}
    interceptor = KestHttpxInterceptor()

    async def inject(request):
        interceptor(request)
        sent["baggage"] = request.headers.get("baggage", "")

    async with httpx.AsyncClient(event_hooks={"request": [inject]}, timeout=20) as client:
        response = await client.post(ENV["KEST_MIXED_RUST_URL"] + "/tool")
    try:
        answer = response.json()
    except ValueError:
        answer = {"text": response.text}
    return {"status": response.status_code, "rust": answer, "sent_baggage": sent.get("baggage")}


@kest_verified(policy="python_step")
async def python_step(depth):
    if depth > 1:
        return await python_step(depth - 1)
    return await call_rust()


@app.post("/start")
async def start(depth: int):
    return await python_step(depth)


def passport_by_tip():
    """The passport member whose last entry `kest.chain_tip` names.

    `BaggageManager.unpack` tries the claim check, then the compressed member, then the
    inline one, whatever the tip says. After a step that received a compressed passport
    and signed one entry more, the longer chain fits inline, and `unpack` still returns
    the shorter one it received. Choosing by the tip, as Kest for Rust's reader does,
    finds the chain the step extended."""
    tip = baggage.get_baggage("kest.chain_tip")
    for key in ("kest.claim_check", "kest.passport_z", "kest.passport"):
        only = lambda wanted, key=key: baggage.get_baggage(key) if wanted == key else None
        candidate = BaggageManager.unpack(only, cache=get_active_cache())
        if candidate.entries and hashlib.sha256(candidate.entries[-1].encode()).hexdigest() == tip:
            return candidate
    return Passport()


@kest_verified(policy="python_callback")
async def python_callback():
    passport = passport_by_tip()
    unpacked = BaggageManager.unpack(baggage.get_baggage, cache=get_active_cache())
    try:
        verified = PassportVerifier.verify(passport, PROVIDERS)
        error = None
    except Exception as failure:  # the verifier raises ValueError on any failure
        verified, error = False, str(failure)
    return {
        "passport": passport.entries,
        "package_unpack_entries": len(unpacked.entries),
        "python_verified": bool(verified),
        "python_error": error,
        "caller": current_caller(),
    }


@app.post("/callback")
async def callback(request: Request):
    answer = await python_callback()
    answer["received_keys"] = baggage_keys(request)
    return answer


@app.get("/health")
async def health():
    return {"ok": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
