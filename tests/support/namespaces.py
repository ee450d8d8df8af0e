"""A broker namespace of its own for a group of tests, so their queues start empty and
nothing they leave reaches another group."""

from __future__ import annotations

from collections.abc import Iterator

from shared.messaging.topology import declare_topology, delete_topology
from shared.settings import Settings


def namespace_of_its_own(settings: Settings, suffix: str) -> Iterator[Settings]:
    """The session's settings in the namespace ``<namespace>-<suffix>``, declared, then
    deleted when the generator ends (use it with ``yield from`` in a fixture)."""
    s = settings.model_copy(update={"broker_namespace": f"{settings.broker_namespace}-{suffix}"})
    declare_topology(s)
    yield s
    delete_topology(s)
