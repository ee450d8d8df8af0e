"""Requests and responses of the ops API (``/api/ops/``): the dead-letter console, its
jobs and audit trail, the books and the timers. Described here for the OpenAPI document;
requests are strict (unknown fields refused), as in ``schemas/api.py``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

MAX_RATE = 1000.0
Name = Annotated[StrictStr, Field(min_length=1, max_length=500)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilterSpec(_Request):
    """Every given field must match; ``exception`` is a case-insensitive substring."""

    type: Name | None = None
    reason: Name | None = None
    exception_type: Name | None = None
    exception: Name | None = None
    min_age_seconds: Annotated[float, Field(ge=0, le=365 * 86400)] | None = None


class GroupSpec(_Request):
    exception_type: Name
    reason: Name


class SelectionSpec(_Request):
    """Exactly one of: ``ids``, a ``group`` as listed by the groups route, or a ``filter``
    evaluated on the server against everything parked (not a page of ids)."""

    ids: Annotated[list[Name], Field(min_length=1, max_length=10_000)] | None = None
    group: GroupSpec | None = None
    filter: FilterSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SelectionSpec:
        if sum(x is not None for x in (self.ids, self.group, self.filter)) != 1:
            raise ValueError("give exactly one of ids, group or filter")
        return self


class JobRequest(_Request):
    kind: Literal["replay", "purge"]
    selection: SelectionSpec
    dry_run: bool = False
    # At least one a second: a job writes its heartbeat between messages, and a job
    # silent for 30 s is taken over by another worker.
    rate: Annotated[float, Field(ge=1, le=MAX_RATE,
                                 description="Messages a second (default 100).")] | None = None


class SelectionQuery(BaseModel):
    """A selection in a query string: ``ids`` (comma-separated), or ``group_exception_type``
    with ``group_reason``, or any of the filter fields (none: everything parked)."""

    ids: str | None = None
    group_exception_type: str | None = None
    group_reason: str | None = None
    type: str | None = None
    reason: str | None = None
    exception_type: str | None = None
    exception: str | None = None
    min_age_seconds: float | None = None
    limit: int | None = None


class DeadLetterSummary(BaseModel):
    id: str
    message_id: str | None = None
    type: str | None = None
    token_id: str | None = None
    user_id: str | None = None
    attempts: int | None = None
    reason: str | None = None
    exception: str | None = None
    exception_type: str
    dead_lettered_at: str | None = None
    original_exchange: str | None = None
    original_routing_key: str | None = None
    original_queue: str | None = None
    replayed: int
    broker_dead_lettered: bool


class DeadLetterList(BaseModel):
    depth: int
    read: int
    messages: list[DeadLetterSummary]


class Group(BaseModel):
    exception_type: str
    reason: str
    count: int


class GroupList(BaseModel):
    depth: int
    read: int
    groups: list[Group]


class DeadLetterDetails(DeadLetterSummary):
    stack: str | None = None
    headers: dict[str, Any]
    properties: dict[str, Any]
    body: Any
    parse_error: str | None = None
    copies: int = Field(description="Messages parked with this id (copies of one event).")


class Verdict(BaseModel):
    id: str
    type: str | None = None
    token_id: str | None = None
    user_id: str | None = None
    verdict: str
    effect: Literal["refund", "no-op", "failure", "other"]


class Effect(BaseModel):
    messages: int
    refunds: int
    points_refunded: int
    users: int
    no_ops: int
    failures: int
    other: int


class DryRun(BaseModel):
    dry_run: Literal[True] = True
    kind: Literal["replay", "purge"]
    selection: dict[str, Any]
    effect: Effect
    truncated: bool = Field(description="More were parked than one read takes (10,000): "
                                        "only the oldest were judged.")
    messages: list[Verdict]


class Job(BaseModel):
    id: int
    kind: Literal["replay", "purge"]
    actor: str
    selection: dict[str, Any]
    rate: float
    status: Literal["queued", "running", "done", "failed"]
    total: int | None
    done: int
    failed: int
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    outcomes: dict[str, str] | None = None


class JobList(BaseModel):
    jobs: list[Job]


class AuditEntry(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    dry_run: bool
    message_ids: list[str]
    result: dict[str, Any]


class AuditList(BaseModel):
    entries: list[AuditEntry]


class Books(BaseModel):
    clean: bool
    checked_at: str
    grace_seconds: float
    accounts: int
    tokens: int
    ledger_rows: int
    elapsed_ms: float
    truncated: bool
    problems: list[dict[str, Any]]


class Timers(BaseModel):
    expiry_lateness: dict[str, Any]
    past_due: dict[str, Any]
    outbox: dict[str, Any]
    dead_letters: dict[str, Any]
    queues: list[dict[str, Any]]


class Sample(BaseModel):
    at: str
    figures: dict[str, Any]


class SampleList(BaseModel):
    samples: list[Sample]
