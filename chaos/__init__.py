"""Fault injection against a real cluster: a three-node RabbitMQ, a PostgreSQL primary
with a synchronous standby, the service's own processes, and the books checked after
every fault (``make chaos``; a short form runs in ``make test``, tests/cluster/)."""
