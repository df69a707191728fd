import os

from hypothesis import HealthCheck, settings

# CI replays the same examples every run (a red CI must mean a change broke something); the
# "hunt" profile explores thousands of new ones: HYPOTHESIS_PROFILE=hunt pytest tests/test_plan_properties.py
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("hunt", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
