"""actuator/connect.py: the API client holds enough connections for everything that talks at once
(the Writer's concurrent writes, the four watches, leader election), so urllib3 never warns
"Connection pool is full" and never throws a connection away, whatever the machine's CPU count."""

from __future__ import annotations

import logging
import multiprocessing

import pytest

from scheduler.actuator.connect import connect
from scheduler.actuator.reads import LISTS
from scheduler.actuator.watch import Watcher
from scheduler.actuator.writer import Writer
from tests.keys import KEYS

from .conftest import MARCH_2026
from .test_writer import reconcile


@pytest.fixture
def one_cpu(monkeypatch):
    """The client's default pool is 5 connections per CPU: a one-CPU pod gets 5."""
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 1)


def test_the_pool_holds_every_concurrent_write_and_watch(one_cpu, server, tmp_path):
    with connect(str(server.write_kubeconfig(tmp_path / "kubeconfig"))) as api:
        writer = Writer(api)
        assert writer.concurrency > 1
        # each write thread, each watch, and leader election at once
        assert api.configuration.connection_pool_maxsize >= writer.concurrency + len(LISTS) + 1
        assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] == api.configuration.connection_pool_maxsize


def test_a_whole_reconcile_under_watches_discards_no_connection(one_cpu, server, real_policy, real_cluster,
                                                               tmp_path, caplog):
    server.load_list(real_cluster)
    with connect(str(server.write_kubeconfig(tmp_path / "kubeconfig"))) as api:
        watcher = Watcher(api, KEYS).start()
        try:
            with caplog.at_level(logging.WARNING, logger="urllib3"):
                _, report = reconcile(api, real_policy, MARCH_2026, Writer(api))
        finally:
            watcher.stop()
    assert report.ok and len(report.done) > 100
    assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []
