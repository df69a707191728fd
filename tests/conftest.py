import os

from hypothesis import HealthCheck, settings

# CI replays the same examples every run (a red CI must mean a change broke something); the
# "hunt" profile explores thousands of new ones: HYPOTHESIS_PROFILE=hunt pytest tests/planner/test_plan_properties.py
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("hunt", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402

from tests.realtools import tool  # noqa: E402


@pytest.fixture(scope="session")
def kubectl():
    """The real kubectl v1.35 (tests/tools/install.sh)."""
    return tool("kubectl")


@pytest.fixture(scope="session")
def helm():
    """The real helm v4 binary (tests/tools/install.sh)."""
    return tool("helm")


@pytest.fixture(scope="session")
def promtool():
    """The real promtool 2.42, unpacked from Debian's prometheus package (tests/tools/install.sh)."""
    return tool("promtool")


@pytest.fixture(scope="session")
def prometheus_server_binary():
    """The real Prometheus 2.42 server binary (tests/tools/install.sh)."""
    return tool("prometheus")


@pytest.fixture
def server():
    """A sandbox Kubernetes API on a free local port (seeded), stopped after the test."""
    from scheduler.sandbox import SandboxServer

    srv = SandboxServer(port=0, seed=1).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def one_cluster_policies():
    """The real programme as if all its pools sat in one cluster, as a policy folder (realpolicy.py)."""
    from tests.realpolicy import one_cluster_dir

    return one_cluster_dir()
