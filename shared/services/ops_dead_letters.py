"""The dead-letter console's parts the ops console builds on, imported from one place:
where they live may move, and then only these lines change."""

from __future__ import annotations

from shared.messaging.dead_letter_queue import REPLAYED, Held, Parked, ParkingQueue
from shared.messaging.dead_letters import DeadLetter
from shared.services import dead_letter_audit as audit
from shared.services import dead_letter_console as console
from shared.services.dead_letter_verdicts import verdicts

__all__ = ["REPLAYED", "DeadLetter", "Held", "Parked", "ParkingQueue", "audit", "console",
           "verdicts"]
