"""Shared pytest configuration: Hypothesis profiles for local runs and CI."""

import os

from hypothesis import HealthCheck, settings

# Checks call an mpmath reference, so examples take milliseconds, not microseconds.
settings.register_profile(
    "gradverify-dev", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "gradverify-ci",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("gradverify-ci" if os.environ.get("CI") else "gradverify-dev")

# Every gradverify module, numpy and ml_dtypes, imported once before any test runs:
# - Hypothesis draws some values from the constants of the local modules loaded so far, so a
#   seeded ``@given`` test would otherwise depend on which tests ran earlier in the same
#   worker (gradverify's own search no longer depends on this);
# - pytester's in-process runs restore sys.modules afterwards, and a second import of
#   ml_dtypes in one process fails ("bfloat16 already registered").
import importlib  # noqa: E402
import pkgutil  # noqa: E402

import ml_dtypes  # noqa: E402, F401
import numpy  # noqa: E402, F401

import gradverify  # noqa: E402

for _module in pkgutil.walk_packages(gradverify.__path__, "gradverify."):
    if not _module.name.endswith("__main__"):
        importlib.import_module(_module.name)
