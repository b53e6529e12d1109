import json
import os
import pathlib

import pytest

VECTORS = pathlib.Path(
    os.environ.get("KEST_VECTORS_DIR", pathlib.Path(__file__).resolve().parents[3] / "vectors")
)


def load(name):
    return json.loads((VECTORS / "python" / name).read_text())


@pytest.fixture(scope="session")
def key():
    return load("key.json")


@pytest.fixture(scope="session")
def signer(key):
    import kest_rs

    return kest_rs.Signer.from_seed(bytes.fromhex(key["seed_hex"]), key["principal"])


@pytest.fixture(scope="session")
def keys(key):
    return {key["principal"]: key["public_key_jwk"]}
