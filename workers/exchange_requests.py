"""``exchange-requests``: on TokenRedeemed, record the exchange request (idempotent by
token id: a duplicate or replay finds the row and changes nothing)."""

from __future__ import annotations

import logging

from schemas.events import TokenRedeemed
from shared.messaging.publisher import ConfirmingPublisher
from shared.services.deps import Deps
from shared.services.exchange_requests import create_exchange_request
from workers.delivery import Delivery

log = logging.getLogger("exchange_tokens.exchange_requests")


class ExchangeRequests:
    consumer = "exchange-requests"

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def accepts_poison(self, delivery: Delivery) -> bool:
        return True

    def handle(self, batch: list[Delivery], publisher: ConfirmingPublisher) -> list[str]:
        outcomes = []
        for d in batch:
            e = d.event
            if not isinstance(e, TokenRedeemed):
                outcomes.append("ignored")
                continue
            with d.log_context():
                created = create_exchange_request(self.deps, e)
                if created:
                    log.info("exchange request created", extra={
                        "token_id": str(e.token_id), "user_id": e.user_id, "points": e.points,
                        "merchant_id": e.merchant_id})
            outcomes.append("created" if created else "duplicate")
        return outcomes
