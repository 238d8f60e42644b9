"""Reading the audit trail: the filters shared by the console, the API, the CLI and exports."""

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.models import AuditEvent, Checkpoint, Head

FILTERS = ("since", "until", "action", "user", "key", "model", "outcome")


class BadFilter(ValueError):
    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param, self.message = param, message


def parse_when(value: str, *, param: str, end: bool = False) -> datetime:
    """An ISO date or date-time (UTC unless it says otherwise). A date alone: its start, or with
    `end` the start of the next day, so `until=2026-01-31` includes that day."""
    value = value.strip()
    when = parse_datetime(value)
    if when is None:
        day = parse_date(value) if len(value) == 10 else None
        if day is None:
            raise BadFilter(param, f"{param} must be a date (2026-01-31) or a date-time (2026-01-31T12:00:00Z), "
                                   f"not {value!r}")
        when = datetime.combine(day + timedelta(days=1) if end else day, time())
    return when if timezone.is_aware(when) else timezone.make_aware(when, UTC)


@dataclass
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    action: str = ""
    user: str = ""
    key: str = ""
    model: str = ""
    outcome: str = ""

    @classmethod
    def parse(cls, params) -> "Filters":
        """From query parameters or CLI options (strings; empty ones are ignored). Raises BadFilter."""
        values = {name: (params.get(name) or "").strip() for name in FILTERS}
        return cls(
            since=parse_when(values["since"], param="since") if values["since"] else None,
            until=parse_when(values["until"], param="until", end=True) if values["until"] else None,
            **{name: values[name][:200] for name in ("action", "user", "key", "model", "outcome")},
        )

    def apply(self, events: QuerySet) -> QuerySet:
        if self.since:
            events = events.filter(time__gte=self.since)
        if self.until:
            events = events.filter(time__lt=self.until)
        if self.action:
            events = (events.filter(action__startswith=self.action[:-1]) if self.action.endswith(".")
                      else events.filter(action=self.action))
        if self.user:
            events = events.filter(actor_username=self.user)
        if self.key:
            events = events.filter(key_prefix__startswith=self.key[:10])
        if self.model:
            events = events.filter(Q(target=self.model) | Q(target__startswith=f"{self.model}:"))
        if self.outcome:
            events = events.filter(outcome=self.outcome)
        return events

    def as_dict(self) -> dict:
        """The filters that are set, as strings (for an event's details and query strings)."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items() if v}


def events(filters: Filters) -> QuerySet:
    return filters.apply(AuditEvent.objects.all())


def chain_status() -> dict:
    head = Head.objects.filter(pk=1).first()
    return {"head": head, "checkpoint": Checkpoint.objects.order_by("-seq").first()}
