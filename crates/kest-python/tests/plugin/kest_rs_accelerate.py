"""A pytest plugin that runs a test session with ``kest_rs.accelerate()`` in effect.

``cargo xtask python`` loads it with ``-p kest_rs_accelerate`` to run the installed
``kest`` package's own test suite on the Rust core, from outside the package.
Set ``KEST_RS_STRICT_VERIFY=1`` to accelerate with ``strict_verify=True``.
"""

import os


def pytest_configure(config):
    import kest_rs

    kest_rs.accelerate(strict_verify=os.environ.get("KEST_RS_STRICT_VERIFY") == "1")
    config.stash_kest_rs = kest_rs


def pytest_report_header(config):
    import kest_rs

    return f"kest_rs.accelerate() in effect: {kest_rs.is_accelerated()}"
