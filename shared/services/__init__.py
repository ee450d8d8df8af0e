"""The services: each public function is one transaction, used alike by the API, the
workers and the CLI. "What happens when a token expires" is :func:`expire.expire`."""

from shared.services.cancel import cancel
from shared.services.credit import credit
from shared.services.deps import Deps
from shared.services.exchange_requests import create_exchange_request, list_exchange_requests
from shared.services.expire import ExpireOutcome, expire
from shared.services.issue import issue
from shared.services.queries import balance, get_token, status
from shared.services.redeem import redeem
from shared.services.sweep import sweep

__all__ = [
    "Deps",
    "ExpireOutcome",
    "balance",
    "cancel",
    "create_exchange_request",
    "credit",
    "expire",
    "get_token",
    "issue",
    "list_exchange_requests",
    "redeem",
    "status",
    "sweep",
]
