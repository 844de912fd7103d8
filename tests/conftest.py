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
