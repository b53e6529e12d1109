"""Verify a passport file with the Python package's own verifier.

Usage: verify_with_kest.py PASSPORT_FILE PRINCIPAL PUBLIC_KEY_HEX [PRINCIPAL PUBLIC_KEY_HEX]...

The Python verifier only checks signatures when the provider object has a `public_key`
attribute, so this hands it an Ed25519PublicKey. Prints one JSON object; exits 0 when the
package accepts the passport and 3 when it raises.
"""

import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from kest.core.models.passport import Passport, PassportVerifier


class KeyHolder:
    def __init__(self, public_key):
        self.public_key = public_key


def main() -> int:
    path, pairs = sys.argv[1], sys.argv[2:]
    with open(path, encoding="utf-8") as handle:
        passport = Passport.deserialize(handle.read())
    providers = {
        principal: KeyHolder(Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)))
        for principal, public_hex in zip(pairs[0::2], pairs[1::2])
    }
    try:
        ok = PassportVerifier.verify(passport, providers)
    except Exception as error:  # the verifier raises ValueError on any failure
        print(json.dumps({"verified": False, "entries": len(passport.entries), "error": str(error)}))
        return 3
    print(json.dumps({"verified": bool(ok), "entries": len(passport.entries)}))
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
