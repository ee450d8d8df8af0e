"""The audit trail of the dead-letter console: one ``dlq_audit`` row per replay or purge.

The row is written BEFORE the broker is touched (status ``started``) and completed with the
outcome of every message afterwards: an unreachable database stops the command before it
changes anything, and a crash half-way still leaves a row saying who started what.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from shared.persistence.tables import DlqAudit
from shared.persistence.transactions import unit_of_work
from shared.services.deps import Deps


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    dry_run: bool
    message_ids: list[str]
    result: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at.isoformat(), "actor": self.actor,
            "action": self.action, "dry_run": self.dry_run, "message_ids": self.message_ids,
            "result": self.result,
        }


def begin(deps: Deps, actor: str, action: str, message_ids: list[str], dry_run: bool) -> int:
    """Record that ``actor`` starts ``action`` on these ids (``["*"]`` for ``--all``)."""
    with unit_of_work(deps.session_factory) as session:
        audit_id: int = session.execute(
            insert(DlqAudit)
            .values(actor=actor, action=action, dry_run=dry_run, message_ids=message_ids,
                    result={"status": "started"})
            .returning(DlqAudit.id)
        ).scalar_one()
        session.commit()
    return audit_id


def finish(deps: Deps, audit_id: int, message_ids: list[str], result: dict[str, Any]) -> None:
    """Complete the row with the ids really acted on and each one's outcome."""
    with unit_of_work(deps.session_factory) as session:
        session.execute(
            update(DlqAudit)
            .where(DlqAudit.id == audit_id)
            .values(message_ids=message_ids, result=result)
        )
        session.commit()


def history(deps: Deps, limit: int = 50) -> list[AuditRow]:
    """The latest audit rows, newest first."""
    with unit_of_work(deps.session_factory) as session:
        rows = session.execute(
            select(DlqAudit).order_by(DlqAudit.at.desc(), DlqAudit.id.desc()).limit(limit)
        ).scalars().all()
        return [
            AuditRow(id=r.id, at=r.at, actor=r.actor, action=r.action, dry_run=r.dry_run,
                     message_ids=list(r.message_ids), result=dict(r.result))
            for r in rows
        ]
