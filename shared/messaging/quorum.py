"""How many replicas each quorum queue starts with (``x-quorum-initial-group-size``).

Three replicas survive the loss of any one node: a publish is confirmed once a majority
of them hold it, so a confirmed message outlives its leader's node. The size comes from
``QUORUM_INITIAL_GROUP_SIZE`` (default 3), capped by the number of nodes listed in
``AMQP_URL``. Against a single broker no argument is sent at all: a group of one is what
the broker makes anyway, and RabbitMQ refuses to redeclare an existing queue with an
argument it was not created with, so deployments on one broker keep their queues as they
are. Moving existing queues to a cluster is a topology change (docs/messaging.md).
"""

from __future__ import annotations

from shared.messaging.broker_nodes import broker_urls

ARGUMENT = "x-quorum-initial-group-size"


def initial_group_size(amqp_url: str, configured: int) -> int | None:
    """The group size to declare, or None to leave the broker's own choice (one node)."""
    size = min(configured, len(broker_urls(amqp_url)))
    return size if size > 1 else None


def group_size_args(size: int | None) -> dict[str, object]:
    return {} if size is None else {ARGUMENT: size}
