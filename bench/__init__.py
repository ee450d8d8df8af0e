"""The benchmark suite: ``python -m bench`` (see docs/bench.md).

Every figure is measured against real PostgreSQL and RabbitMQ, beside a baseline measured
in the same run on the same machine, in a throwaway database and broker namespace that
are removed at the end.
"""
