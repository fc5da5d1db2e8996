"""The audit a new version of a month must pass before it may replace the stored one.

Write–audit–publish: a month is read to its end, normalised and cleaned into staging files, and
profiled on the way (rows read, kept, rejected, values per column). That profile is held against
the month's stored version (or, for a first load, its stored neighbours) by the rules below. Only a
version that passes is published; one that fails is kept aside for inspection and the stored month
stays exactly as it was. Nothing here knows Dagster or where files live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

AUDIT_RULES: dict[str, str] = {
    "parses_to_end": "the file reads to its last row in the service's canonical schema",
    "has_rows": "the file has at least one row",
    "reconciles": "rows kept + rows rejected = rows read",
    "no_column_newly_null": "no column that had values in the stored version (first load: in the stored months on both sides) is all null now",
    "rows_near_previous": "rows read are within the band of the month's stored version",
    "rows_near_neighbours": "first load: rows read are within the band of a stored neighbouring month",
    "reject_share_near_history": "the share of rejected rows is not far above the stored history",
}


@dataclass(frozen=True)
class AuditPolicy:
    """How far a new version may stray from what is stored. Ratios are new rows / stored rows."""

    min_rows_ratio: float = 0.9
    max_rows_ratio: float = 1.5
    #: Months differ more from their neighbours than from themselves (2020-04 had a tenth of 2020-03).
    neighbour_min_rows_ratio: float = 0.2
    neighbour_max_rows_ratio: float = 5.0
    #: Absolute increase of the rejected share (0.10 = ten percentage points) over the history's.
    max_reject_share_increase: float = 0.10
    #: Rejected share allowed when nothing is stored to compare with.
    max_reject_share_without_history: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.min_rows_ratio <= 1 <= self.max_rows_ratio:
            raise ValueError(f"rows band {self.min_rows_ratio}..{self.max_rows_ratio} must contain 1")
        if not 0 <= self.neighbour_min_rows_ratio <= 1 <= self.neighbour_max_rows_ratio:
            raise ValueError(
                f"neighbour band {self.neighbour_min_rows_ratio}..{self.neighbour_max_rows_ratio} must contain 1"
            )


@dataclass
class MonthProfile:
    """What the audit needs to know of one version of a month."""

    #: rows in the file, as the file itself counts them (parquet footer, CSV lines)
    rows_read: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    #: kept rows holding a value, per canonical column
    values: dict[str, int] = field(default_factory=dict)

    @property
    def reject_share(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    def add(self, batch: pa.RecordBatch, rejected: pa.RecordBatch) -> None:
        """Count one cleaned batch: all its rows, and those of them rejected. The kept rows' values,
        column by column, are the batch's less the rejected rows': no copy of the kept rows is made."""
        self.rows_kept += batch.num_rows - rejected.num_rows
        self.rows_rejected += rejected.num_rows
        for name, column in zip(batch.schema.names, batch.columns):
            dropped = rejected.column(name)
            self.values[name] = self.values.get(name, 0) + (len(column) - column.null_count) - (len(dropped) - dropped.null_count)

    @classmethod
    def of_files(cls, cleaned: list[pq.ParquetFile], rejected: pq.ParquetFile | None) -> MonthProfile:
        """The profile of a stored version, from its files' footers (no data is read where the
        footer has statistics, as every file we write does)."""
        kept = sum(pf.metadata.num_rows for pf in cleaned)
        values: dict[str, int] = {}
        for pf in cleaned:
            meta = pf.metadata
            for index, name in enumerate(pf.schema_arrow.names):
                nulls = 0
                for group in range(meta.num_row_groups):
                    stats = meta.row_group(group).column(index).statistics
                    if stats is None or not stats.has_null_count:
                        nulls = _scan_nulls(pf, name)
                        break
                    nulls += stats.null_count
                values[name] = values.get(name, 0) + meta.num_rows - nulls
        rejected_rows = rejected.metadata.num_rows if rejected is not None else 0
        return cls(kept + rejected_rows, kept, rejected_rows, values)


def _scan_nulls(pf: pq.ParquetFile, column: str) -> int:
    return sum(batch.column(0).null_count for batch in pf.iter_batches(columns=[column]))


@dataclass(frozen=True)
class AuditReport:
    """The verdict on a new version: which rules failed, why, and the figures behind it."""

    failures: dict[str, str]
    facts: dict[str, object]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"passed": self.passed}


def parse_failure(reason: str) -> AuditReport:
    """The report for a file that could not be read to its end (never publishable, even forced)."""
    return AuditReport(failures={"parses_to_end": reason}, facts={})


def audit_month(
    new: MonthProfile,
    previous: MonthProfile | None,
    neighbours: Mapping[str, MonthProfile],
    policy: AuditPolicy = AuditPolicy(),
) -> AuditReport:
    """Hold `new` against the stored version `previous` (None: a first load) and, for a first load,
    the stored `neighbours` (month label -> profile)."""
    failures: dict[str, str] = {}
    facts: dict[str, object] = {
        "rows_read": new.rows_read,
        "rows_kept": new.rows_kept,
        "rows_rejected": new.rows_rejected,
        "reject_share": round(new.reject_share, 4),
    }
    if new.rows_read == 0:
        failures["has_rows"] = "the file has no rows"
    if new.rows_kept + new.rows_rejected != new.rows_read:
        failures["reconciles"] = f"kept {new.rows_kept:,} + rejected {new.rows_rejected:,} != read {new.rows_read:,}"

    if previous is not None:
        facts["previous_rows_read"] = previous.rows_read
        facts["previous_reject_share"] = round(previous.reject_share, 4)
        newly_null = sorted(
            name for name, count in previous.values.items() if count > 0 and new.rows_kept > 0 and new.values.get(name, 0) == 0
        )
        if newly_null:
            failures["no_column_newly_null"] = (
                f"column(s) {', '.join(newly_null)} have no values, but had values in the stored version"
            )
        if new.rows_read and previous.rows_read:
            ratio = new.rows_read / previous.rows_read
            facts["rows_ratio_to_previous"] = round(ratio, 4)
            if not policy.min_rows_ratio <= ratio <= policy.max_rows_ratio:
                failures["rows_near_previous"] = (
                    f"{new.rows_read:,} rows read vs {previous.rows_read:,} in the stored version "
                    f"(x{ratio:.3f}; allowed x{policy.min_rows_ratio}..x{policy.max_rows_ratio})"
                )
        history = [previous]
    else:
        history = list(neighbours.values())
        # A column can start or stop at an era boundary, so only one with values on both sides counts.
        if len(neighbours) == 2 and new.rows_kept > 0:
            both = set.intersection(*({c for c, n in p.values.items() if n > 0} for p in neighbours.values()))
            newly_null = sorted(c for c in both if new.values.get(c, 0) == 0)
            if newly_null:
                failures["no_column_newly_null"] = (
                    f"column(s) {', '.join(newly_null)} have no values, but the stored months on both sides "
                    f"({', '.join(sorted(neighbours))}) have"
                )
        if neighbours and new.rows_read:
            facts["neighbour_rows_read"] = {label: p.rows_read for label, p in sorted(neighbours.items())}
            low, high = policy.neighbour_min_rows_ratio, policy.neighbour_max_rows_ratio
            if not any(p.rows_read and low <= new.rows_read / p.rows_read <= high for p in neighbours.values()):
                shown = ", ".join(f"{label} {p.rows_read:,}" for label, p in sorted(neighbours.items()))
                failures["rows_near_neighbours"] = (
                    f"{new.rows_read:,} rows read, not within x{low}..x{high} of any stored neighbour ({shown})"
                )

    if new.rows_read:
        known = [p.reject_share for p in history if p.rows_read]
        if known:
            ceiling = max(known) + policy.max_reject_share_increase
            why = f"the stored history's {max(known):.1%} + {policy.max_reject_share_increase:.0%}"
        else:
            ceiling = policy.max_reject_share_without_history
            why = "the limit without history"
        facts["reject_share_ceiling"] = round(ceiling, 4)
        if new.reject_share > ceiling:
            failures["reject_share_near_history"] = (
                f"{new.reject_share:.1%} of rows rejected, above {ceiling:.1%} ({why})"
            )
    return AuditReport(failures=failures, facts=facts)


def describe_failures(failures: Mapping[str, str]) -> str:
    return "; ".join(f"{rule}: {reason}" for rule, reason in failures.items())

