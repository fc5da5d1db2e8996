"""The audit's rules on their own: each one passes what it should, fails what it should, and says why."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_assets.tlc.audit import AUDIT_RULES, AuditPolicy, MonthProfile, audit_month, parse_failure


def profile(read: int, kept: int, rejected: int | None = None, **values: int) -> MonthProfile:
    return MonthProfile(read, kept, read - kept if rejected is None else rejected, {"fare": kept, **values})


STORED = profile(10_000, 9_500)


def failed(report) -> set[str]:
    return set(report.failures)


def test_a_version_like_the_stored_one_passes():
    report = audit_month(profile(10_200, 9_700), STORED, {})
    assert report.passed and report.facts["rows_ratio_to_previous"] == 1.02


@pytest.mark.parametrize(
    "new, rule",
    [
        (profile(0, 0), "has_rows"),
        (profile(100, 95), "rows_near_previous"),
        (profile(16_000, 15_000), "rows_near_previous"),
        (profile(10_000, 9_500, rejected=400), "reconciles"),
        (profile(10_000, 9_500, fare=0), "no_column_newly_null"),
        (profile(10_000, 7_000), "reject_share_near_history"),
    ],
)
def test_each_rule_holds_back_what_it_names(new, rule):
    report = audit_month(new, STORED, {})
    assert rule in failed(report) and rule in AUDIT_RULES
    assert not report.passed and report.failures[rule]


def test_a_column_that_had_no_values_before_may_stay_empty():
    assert audit_month(profile(10_000, 9_500, ehail_fee=0), profile(10_000, 9_500, ehail_fee=0), {}).passed


def test_first_load_is_held_against_its_neighbours_with_a_wider_band():
    neighbours = {"2020-03": profile(3_000_000, 2_900_000), "2020-05": profile(348_000, 330_000)}
    assert audit_month(profile(238_000, 225_000), None, neighbours).passed  # 2020-04: a tenth of March, near May
    report = audit_month(profile(2_000, 1_900), None, neighbours)
    assert failed(report) == {"rows_near_neighbours"} and "2020-03 3,000,000" in report.failures["rows_near_neighbours"]


def test_first_load_column_with_values_on_both_sides_may_not_be_empty():
    before, after = profile(10_000, 9_500, congestion=9_000), profile(10_000, 9_500, congestion=9_100)
    missing = profile(10_000, 9_500, congestion=0, fare=0)
    report = audit_month(missing, None, {"2019-01": before, "2019-03": after})
    assert failed(report) == {"no_column_newly_null"}
    assert "congestion, fare" in report.failures["no_column_newly_null"]
    # an era boundary: the column starts with the next month, so only one side has it
    assert audit_month(missing, None, {"2019-03": after}).passed
    assert audit_month(profile(10_000, 9_500, congestion=0), None, {"2018-12": profile(10_000, 9_500, congestion=0), "2019-02": after}).passed


def test_with_no_history_only_an_absolute_reject_share_applies():
    assert audit_month(profile(1_000, 600), None, {}).passed
    assert failed(audit_month(profile(1_000, 400), None, {})) == {"reject_share_near_history"}


def test_the_policy_is_configurable_and_must_contain_one():
    loose = AuditPolicy(min_rows_ratio=0.001)
    assert audit_month(profile(100, 95), STORED, {}, loose).passed
    with pytest.raises(ValueError):
        AuditPolicy(min_rows_ratio=1.2)
    with pytest.raises(ValueError):
        AuditPolicy(neighbour_max_rows_ratio=0.5)


def test_a_parse_failure_names_its_rule():
    report = parse_failure("yellow 2024-01 (f.parquet): cannot read: Corrupt snappy compressed data")
    assert failed(report) == {"parses_to_end"} and not report.passed
    assert report.to_dict()["passed"] is False


def test_the_stored_profile_comes_from_the_footers(tmp_path):
    kept = pa.table({"fare": pa.array([1.0, None, 3.0] * 100_000), "tip": pa.nulls(300_000, pa.float64())})
    # a month's kept rows in two day files
    pq.write_table(kept.slice(0, 100_000), tmp_path / "day1.parquet", row_group_size=64_000)
    pq.write_table(kept.slice(100_000), tmp_path / "day2.parquet", row_group_size=64_000)
    pq.write_table(pa.table({"reject_rule": ["x"] * 7}), tmp_path / "rejected.parquet")
    days = [pq.ParquetFile(tmp_path / f"day{n}.parquet") for n in (1, 2)]
    stored = MonthProfile.of_files(days, pq.ParquetFile(tmp_path / "rejected.parquet"))
    assert (stored.rows_read, stored.rows_kept, stored.rows_rejected) == (300_007, 300_000, 7)
    assert stored.values == {"fare": 200_000, "tip": 0}
    pq.write_table(kept, tmp_path / "no_stats.parquet", write_statistics=False)
    assert MonthProfile.of_files([pq.ParquetFile(tmp_path / "no_stats.parquet")], None).values == {"fare": 200_000, "tip": 0}


def test_a_batch_profile_counts_the_kept_rows_values_per_column():
    new = MonthProfile()
    # the kept rows' values are the batch's less the rejected rows' (the rejected carry a rule too)
    batch = pa.record_batch({"fare": pa.array([1.0, None, 5.0]), "tip": pa.array([None, None, 2.0])})
    rejected = pa.record_batch({"fare": pa.array([5.0]), "tip": pa.array([2.0]), "reject_rule": pa.array(["r"])})
    new.add(batch, rejected)
    new.add(batch.slice(0, 2), rejected.slice(0, 0))
    assert (new.rows_kept, new.rows_rejected, new.values) == (4, 1, {"fare": 2, "tip": 0})
