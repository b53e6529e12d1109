"""Reads a `baggage` header written by Kest for Rust with the Python package's own
BaggageManager.unpack, and prints how many entries it recovered and the hash of the last.

Usage: unpack_baggage.py HEADER_FILE CLAIMS_JSON_FILE
"""
import hashlib
import json
import sys
from urllib.parse import unquote

from kest.core.framework.cache import SimpleCache
from kest.core.models.passport import BaggageManager

header = open(sys.argv[1], encoding="utf-8").read().strip()
claims = json.load(open(sys.argv[2], encoding="utf-8"))

members = {}
for item in header.split(","):
    key, _, value = item.strip().partition("=")
    # W3C baggage: properties follow ';', values are percent-encoded.
    members[key.strip()] = unquote(value.split(";")[0].strip())

cache = SimpleCache()
for key, value in claims.items():
    cache.set(key, value)

passport = BaggageManager.unpack(members.get, cache)
last = hashlib.sha256(passport.entries[-1].encode()).hexdigest() if passport.entries else None
print(json.dumps({"entries": len(passport.entries), "tip": last}))
