"""The API server's gunicorn configuration: what the throughput figure of ``make bench``
rests on (docs/api.md, "Serving")."""

from __future__ import annotations

import pytest
from gunicorn.http import message

from api.app import create_app
from api.server import ApiServer
from shared.settings import Settings


def _config(**settings: object):
    return ApiServer(Settings(jwt_secret="s3cret", **settings)).cfg


def test_defaults_are_two_waitress_processes_of_six_threads(monkeypatch):
    for name in ("WEB_CONCURRENCY", "WEB_THREADS", "WEB_WORKER"):
        monkeypatch.delenv(name, raising=False)
    cfg = _config()
    assert (cfg.worker_class_str, cfg.workers, cfg.threads) == (
        "api.waitress_worker.WaitressWorker", 2, 6)
    assert cfg.reuse_port is True


def test_web_worker_gthread_selects_gunicorns_threaded_worker():
    assert _config(web_worker="gthread").worker_class_str == (
        "api.gthread_worker.JsonRefusalThreadWorker")


def test_workers_and_threads_follow_the_settings():
    cfg = _config(web_concurrency=3, web_threads=2)
    assert (cfg.workers, cfg.threads) == (3, 2)


def test_requests_are_parsed_by_gunicorns_c_parser():
    # gunicorn_h1c is a dependency; gunicorn takes it only when it is importable and no
    # compatibility flag of the configuration rules it out. Private to gunicorn: if it
    # moves, this test says so rather than the benchmark losing ~4 % unnoticed.
    message._fast_parser_available = None  # gunicorn caches the import's outcome
    assert message._check_fast_parser(_config()) is True


@pytest.mark.parametrize(("threads", "pooled"), [(1, 5), (5, 5), (8, 8)])
def test_each_worker_pools_a_connection_per_thread_at_least(threads, pooled):
    # Fewer than threads, and the busiest threads took overflow connections that are
    # closed on return: a new server process per request (api/app.py, api_pool_size).
    app = create_app(Settings(jwt_secret="s3cret", web_threads=threads,
                              database_url="postgresql://127.0.0.1:1/none"))
    try:
        assert app.extensions["container"].engine.pool.size() == pooled
    finally:
        app.extensions["container"].close()
