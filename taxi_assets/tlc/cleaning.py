"""Named, switchable cleaning rules over canonical batches; rejected rows are kept, labelled with their rule.

The zoomcamp pipelines silently dropped rows (passenger_count > 0, trip_distance > 0). Here every rule has a
name and a description, can be switched off per run, and a rejected row goes to a rejects table with the FIRST
rule that rejected it, so kept + rejected always equals what came in and every drop can be explained.
Predicates are Arrow compute with Kleene logic; a null predicate means the row is rejected (a null
passenger_count does not pass passenger_count > 0, as in the zoomcamp's pandas filter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from taxi_assets.tlc.normalize import holds_canonical
from taxi_assets.tlc.services import TS, Service
from taxi_assets.tlc.months import next_month, parse_month

__all__ = [
    "REJECT_RULE",
    "REJECTS_SCHEMA",
    "RULES",
    "Cleaner",
    "Rule",
    "RuleContext",
    "rule_names_for",
]

#: Name of the column the rejects table adds: the rule that rejected the row.
REJECT_RULE = "reject_rule"
TAXIS = frozenset({"yellow", "green"})


@dataclass(frozen=True)
class RuleContext:
    """What a predicate may depend on besides the batch."""

    service: Service
    month_start: pa.Scalar
    month_end: pa.Scalar
    valid_location_ids: pa.Array


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    #: services the rule applies to; None = all
    services: frozenset[str] | None
    default: bool
    #: batch -> boolean "row is OK" mask; null means reject
    predicate: Callable[[pa.RecordBatch, RuleContext], pa.Array]

    def applies_to(self, service: Service) -> bool:
        return self.services is None or service.name in self.services


def _dropoff_not_before_pickup(b: pa.RecordBatch, ctx: RuleContext) -> pa.Array:
    ok = pc.greater_equal(b["dropoff_datetime"], b["pickup_datetime"])
    return pc.or_kleene(pc.is_null(b["dropoff_datetime"]), ok) if ctx.service.dropoff_nullable else ok


def _known_location_ids(b: pa.RecordBatch, ctx: RuleContext) -> pa.Array:
    ok = None
    for column in ("pickup_location_id", "dropoff_location_id"):
        known = pc.is_in(b[column], value_set=ctx.valid_location_ids)  # null -> false
        if ctx.service.locations_nullable:
            known = pc.or_kleene(pc.is_null(b[column]), known)
        ok = known if ok is None else pc.and_kleene(ok, known)
    return ok


RULES: tuple[Rule, ...] = (
    Rule("pickup_required", "pickup_datetime is present", None, True,
         lambda b, ctx: pc.is_valid(b["pickup_datetime"])),
    Rule("pickup_in_month", "pickup_datetime falls in the file's month", None, True,
         lambda b, ctx: pc.and_kleene(pc.greater_equal(b["pickup_datetime"], ctx.month_start),
                                      pc.less(b["pickup_datetime"], ctx.month_end))),
    Rule("dropoff_not_before_pickup",
         "dropoff_datetime >= pickup_datetime (a missing dropoff is allowed only where the service has none)",
         None, True, _dropoff_not_before_pickup),
    Rule("known_location_ids",
         "pickup/dropoff location ids are known zone ids (missing allowed only where the service allows it)",
         None, True, _known_location_ids),
    Rule("passenger_count_positive", "passenger_count > 0 (zoomcamp rule; null rejects)", TAXIS, True,
         lambda b, ctx: pc.greater(b["passenger_count"], 0)),
    Rule("trip_distance_positive", "trip_distance > 0 (zoomcamp rule)", TAXIS, True,
         lambda b, ctx: pc.greater(b["trip_distance"], 0)),
    Rule("non_negative_total", "total_amount >= 0 (refunds and disputes are rejected)", TAXIS, True,
         lambda b, ctx: pc.greater_equal(b["total_amount"], 0)),
)
_BY_NAME = {rule.name: rule for rule in RULES}


def REJECTS_SCHEMA(service: Service) -> pa.Schema:  # noqa: N802 - reads as the constant it stands for
    """The service's canonical schema plus the final `reject_rule` column."""
    return service.schema.append(pa.field(REJECT_RULE, pa.string()))


def rule_names_for(service: Service) -> list[str]:
    """The rules on by default for a service, in order."""
    return [r.name for r in RULES if r.default and r.applies_to(service)]


class Cleaner:
    """Splits canonical batches of one service-month into kept and rejected rows, counting as it goes."""

    def __init__(self, service: Service, month: dt.date | str, enabled: Iterable[str] | None = None,
                 valid_location_ids: pa.Array | Iterable[int] | None = None) -> None:
        names = rule_names_for(service) if enabled is None else list(enabled)
        unknown = [n for n in names if n not in _BY_NAME]
        if unknown:
            raise ValueError(f"unknown cleaning rule(s) {unknown}; valid rules: {list(_BY_NAME)}")
        # RULES order, not the caller's: the first rule that rejects a row is the one recorded.
        self.rules = [r for r in RULES if r.name in names and r.applies_to(service)]
        if valid_location_ids is None:
            if "known_location_ids" in {r.name for r in self.rules}:
                raise ValueError("rule known_location_ids is enabled but no valid_location_ids were given")
            valid_location_ids = []
        if not isinstance(valid_location_ids, (pa.Array, pa.ChunkedArray)):
            valid_location_ids = pa.array(sorted(set(valid_location_ids)), pa.int32())
        self.service = service
        self.month = parse_month(month) if isinstance(month, str) else month
        end = next_month(self.month)
        self._ctx = RuleContext(
            service,
            pa.scalar(dt.datetime(self.month.year, self.month.month, 1), TS),
            pa.scalar(dt.datetime(end.year, end.month, 1), TS),
            pc.cast(valid_location_ids, pa.int32()),
        )
        self.rejects_schema = REJECTS_SCHEMA(service)
        self._rule_labels = pa.array(self.rule_names, pa.string())
        self.counts: dict[str, int] = {r.name: 0 for r in self.rules}
        self.rows_in = 0
        self.rows_kept = 0

    @property
    def rule_names(self) -> list[str]:
        return [r.name for r in self.rules]

    @property
    def rows_rejected(self) -> int:
        return self.rows_in - self.rows_kept

    def judge(self, batch: pa.RecordBatch) -> tuple[pa.BooleanArray, pa.RecordBatch]:
        """(keep, rejected): which of the batch's rows every rule keeps (a mask without nulls), and
        the others with `reject_rule`. The kept rows are not copied here: `batch.filter(keep)` is
        left to whoever writes them (the ingest's day writers, each its own day, off this thread)."""
        if not holds_canonical(batch.schema, self.service):
            raise ValueError(f"Cleaner({self.service.name}) needs batches of the canonical {self.service.name} "
                             f"schema (NormalizationPlan.apply output); got {batch.schema}")
        n = batch.num_rows
        ok_so_far = pa.repeat(pa.scalar(True), n)
        # Each row's first rejecting rule as its index, labelled only on the rejected rows: a
        # string column over the whole batch per rule cost a fifth of the split.
        first_rule = pa.nulls(n, pa.int8())
        for index, rule in enumerate(self.rules):
            ok = pc.fill_null(rule.predicate(batch, self._ctx), False)
            newly_rejected = pc.and_not(ok_so_far, ok)
            count = pc.sum(newly_rejected).as_py() or 0
            if count:
                self.counts[rule.name] += count
                first_rule = pc.if_else(newly_rejected, pa.scalar(index, pa.int8()), first_rule)
                ok_so_far = pc.and_(ok_so_far, ok)
        rejected_mask = pc.invert(ok_so_far)
        rejected = batch.filter(rejected_mask)
        reason = pc.take(self._rule_labels, first_rule.filter(rejected_mask))
        columns = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in rejected.columns]
        rejected = pa.RecordBatch.from_arrays([*columns, reason], schema=self.rejects_schema)
        self.rows_in += n
        self.rows_kept += n - rejected.num_rows
        return ok_so_far, rejected
