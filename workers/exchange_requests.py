"""``exchange-requests``: on TokenRedeemed, record the exchange request (idempotent by
token id: a duplicate or replay finds the row and changes nothing). An event the database
does not back (token unknown, active, refunded, or redeemed by someone else) is refused:
dead-lettered at once with the reason, nothing recorded."""

from __future__ import annotations

import logging

from schemas.events import TokenRedeemed
from shared.messaging.failures import Refused
from shared.messaging.publisher import ConfirmingPublisher
from shared.services.deps import Deps
from shared.services.exchange_requests import create_exchange_request
from shared.services.redemption_check import RedemptionNotInDatabase
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
                try:
                    created = create_exchange_request(self.deps, e)
                except RedemptionNotInDatabase as exc:
                    raise Refused(str(exc)) from exc
                if created:
                    log.info("exchange request created", extra={
                        "token_id": str(e.token_id), "user_id": e.user_id, "points": e.points,
                        "merchant_id": e.merchant_id})
            outcomes.append("created" if created else "duplicate")
        return outcomes
