"""What a consumer role receives, and what a role is: the contract between the consumer
loop (workers/consumer.py) and the roles (expire, schedule-expiry, exchange requests,
audit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import amqp

from schemas.events import Event
from shared.logs import bound
from shared.messaging.names import H_REQUEST_ID
from shared.messaging.publisher import ConfirmingPublisher


@dataclass
class Delivery:
    """One message as received, plus its parsed event once it parsed."""

    delivery_tag: int
    exchange: str
    routing_key: str
    body: bytes
    message_id: str | None
    type: str | None
    headers: dict[str, Any]
    event: Event | None = None

    @classmethod
    def of(cls, message: amqp.Message) -> Delivery:
        info = message.delivery_info
        props = message.properties
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        return cls(
            delivery_tag=info["delivery_tag"],
            exchange=info.get("exchange", ""),
            routing_key=info.get("routing_key", ""),
            body=body,
            message_id=props.get("message_id"),
            type=props.get("type"),
            headers=dict(props.get("application_headers") or {}),
        )

    def log_context(self) -> Any:
        request_id = self.headers.get(H_REQUEST_ID)
        return bound(request_id=str(request_id) if request_id else None,
                     message_id=self.message_id)


class Role(Protocol):
    """A queue consumer's business part: handle a batch of parsed deliveries."""

    consumer: str  # topology.CONSUMERS key: the queue is <ns>.<consumer>

    def handle(self, batch: list[Delivery], publisher: ConfirmingPublisher) -> list[str]:
        """Do the work (committing to the database) and return one outcome per delivery.
        Raise to fail the whole batch; the loop then retries the messages one by one."""
        ...

    def accepts_poison(self, delivery: Delivery) -> bool:
        """Whether this consumer dead-letters an unparseable ``delivery`` (else logs it)."""
        ...


def event_fields(d: Delivery) -> dict[str, Any]:
    e = d.event
    if e is None:
        return {"routing_key": d.routing_key}
    return {"type": e.type, "token_id": str(e.token_id), "user_id": e.user_id,
            "points": e.points}


