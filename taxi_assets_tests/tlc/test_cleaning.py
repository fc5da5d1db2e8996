"""Cleaning rules: each rule rejects exactly what it says, can be switched off, and nothing is lost."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_assets.tlc.cleaning import REJECT_RULE, REJECTS_SCHEMA, RULES, Cleaner, rule_names_for
from taxi_assets.tlc.raw_reader import iter_canonical_batches
from taxi_assets.tlc.services import FHV, FHVHV, GREEN, SERVICES, YELLOW, Service

try:
    from taxi_assets_tests.samples import sample, valid_location_ids
except ImportError:  # tests folder imported as rootdir-less modules
    from samples import sample, valid_location_ids

MONTH = dt.date(2024, 1, 1)
ZONES = set(range(1, 266))  # the lookup's ids; the real file is checked against this below
T0 = dt.datetime(2024, 1, 15, 10, 0)


def good_row(service: Service) -> dict:
    """A row every default rule of `service` accepts."""
    common = {"pickup_datetime": T0, "dropoff_datetime": T0 + dt.timedelta(minutes=20),
              "pickup_location_id": 100, "dropoff_location_id": 200, "source_month": MONTH}
    if service.name in ("yellow", "green"):
        return {**common, "vendor_id": 1, "passenger_count": 1, "trip_distance": 2.5, "ratecode_id": 1,
                "payment_type": 1, "fare_amount": 12.0, "tip_amount": 2.0, "total_amount": 15.3}
    if service is FHVHV:
        return {**common, "hvfhs_license_num": "HV0003", "dispatching_base_num": "B02764", "trip_miles": 3.1,
                "base_passenger_fare": 14.2}
    return {**common, "dispatching_base_num": "B00001"}


def batch(service: Service, *changes: dict) -> pa.RecordBatch:
    """One good row, then one row per `changes` dict (the good row with those values replaced)."""
    rows = [good_row(service)] + [{**good_row(service), **change} for change in changes]
    return pa.RecordBatch.from_pylist(rows, schema=service.schema)


# For each rule, a change that breaks exactly that rule (and no earlier one).
BREAKERS = {
    "pickup_required": {"pickup_datetime": None},
    "pickup_in_month": {"pickup_datetime": dt.datetime(2023, 12, 31, 23, 59), "dropoff_datetime": T0},
    "dropoff_not_before_pickup": {"dropoff_datetime": T0 - dt.timedelta(seconds=1)},
    "known_location_ids": {"dropoff_location_id": 266},
    "passenger_count_positive": {"passenger_count": 0},
    "trip_distance_positive": {"trip_distance": 0.0},
    "non_negative_total": {"total_amount": -15.3},
}
def split(cleaner: Cleaner, b: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """The kept rows and the rejected ones, as the ingest's day writers end up with them."""
    keep, rejected = cleaner.judge(b)
    return b.filter(keep), rejected


CASES = [pytest.param(rule.name, service, id=f"{rule.name}-{service.name}")
         for rule in RULES for service in SERVICES.values() if rule.applies_to(service)]


def test_breakers_cover_every_rule_and_rules_are_ordered():
    assert [r.name for r in RULES] == list(BREAKERS)
    assert rule_names_for(YELLOW) == rule_names_for(GREEN) == list(BREAKERS)
    assert rule_names_for(FHV) == rule_names_for(FHVHV) == list(BREAKERS)[:4]


@pytest.mark.parametrize("rule,service", CASES)
def test_each_rule_rejects_its_row_and_can_be_switched_off(rule, service):
    b = batch(service, BREAKERS[rule])
    cleaner = Cleaner(service, MONTH, valid_location_ids=ZONES)
    keep, rejected = cleaner.judge(b)
    assert keep.to_pylist() == [True, False]  # a mask over the batch, no nulls: the ingest's writers filter with it
    kept = b.filter(keep)
    assert kept.to_pylist() == b.slice(0, 1).to_pylist()
    assert rejected.column(REJECT_RULE).to_pylist() == [rule]
    assert rejected.drop_columns([REJECT_RULE]).to_pylist() == b.slice(1).to_pylist()
    assert cleaner.counts == {name: int(name == rule) for name in rule_names_for(service)}
    assert (cleaner.rows_in, cleaner.rows_kept, cleaner.rows_rejected) == (2, 1, 1)

    only = Cleaner(service, MONTH, enabled=[rule], valid_location_ids=ZONES)
    assert split(only, b)[1].column(REJECT_RULE).to_pylist() == [rule]

    others = [name for name in rule_names_for(service) if name != rule]
    kept, rejected = split(Cleaner(service, MONTH, enabled=others, valid_location_ids=ZONES), b)
    if rule == "pickup_required":
        # a null pickup is still not "in the month": null predicates reject
        assert rejected.column(REJECT_RULE).to_pylist() == ["pickup_in_month"]
    else:
        assert kept.num_rows == 2 and rejected.num_rows == 0


def test_no_rules_keeps_everything():
    b = batch(YELLOW, *BREAKERS.values())
    kept, rejected = split(Cleaner(YELLOW, MONTH, enabled=[]), b)
    assert kept.num_rows == b.num_rows == 8 and rejected.num_rows == 0


def test_first_rule_wins_whatever_order_they_are_enabled_in():
    b = batch(YELLOW, {**BREAKERS["non_negative_total"], **BREAKERS["pickup_in_month"], "passenger_count": 0})
    cleaner = Cleaner(YELLOW, MONTH, enabled=list(reversed(rule_names_for(YELLOW))), valid_location_ids=ZONES)
    _, rejected = split(cleaner, b)
    assert rejected.column(REJECT_RULE).to_pylist() == ["pickup_in_month"]
    assert cleaner.counts["pickup_in_month"] == 1 and cleaner.counts["passenger_count_positive"] == 0


@pytest.mark.parametrize("change,rule", [
    ({"passenger_count": None}, "passenger_count_positive"),
    ({"trip_distance": None}, "trip_distance_positive"),
    ({"total_amount": None}, "non_negative_total"),
    ({"dropoff_datetime": None}, "dropoff_not_before_pickup"),
    ({"pickup_location_id": None}, "known_location_ids"),
    ({"dropoff_location_id": None}, "known_location_ids"),
    ({"pickup_datetime": dt.datetime(2024, 2, 1)}, "pickup_in_month"),  # the end is exclusive
])
def test_nulls_reject_in_taxi_services(change, rule):
    for service in (YELLOW, GREEN):
        _, rejected = split(Cleaner(service, MONTH, valid_location_ids=ZONES), batch(service, change))
        assert rejected.column(REJECT_RULE).to_pylist() == [rule]


def test_fhv_null_dropoff_and_locations_are_ordinary():
    b = batch(FHV, {"dropoff_datetime": None, "pickup_location_id": None, "dropoff_location_id": None},
              {"dropoff_location_id": None}, {"pickup_location_id": 0})
    kept, rejected = split(Cleaner(FHV, MONTH, valid_location_ids=ZONES), b)
    assert kept.num_rows == 3
    assert rejected.column(REJECT_RULE).to_pylist() == ["known_location_ids"]
    # fhvhv always has both zones: a null there is a defect
    _, rejected = split(Cleaner(FHVHV, MONTH, valid_location_ids=ZONES), batch(FHVHV, {"pickup_location_id": None}))
    assert rejected.column(REJECT_RULE).to_pylist() == ["known_location_ids"]


def test_month_boundaries_are_inclusive_start_exclusive_end():
    b = batch(YELLOW, {"pickup_datetime": dt.datetime(2024, 1, 1), "dropoff_datetime": dt.datetime(2024, 1, 1)},
              {"pickup_datetime": dt.datetime(2024, 1, 31, 23, 59, 59, 999999),
               "dropoff_datetime": dt.datetime(2024, 2, 1, 0, 5)},
              {"pickup_datetime": dt.datetime(2024, 2, 1), "dropoff_datetime": dt.datetime(2024, 2, 1)})
    kept, rejected = split(Cleaner(YELLOW, "2024-01", valid_location_ids=ZONES), b)
    assert kept.num_rows == 3 and rejected.column(REJECT_RULE).to_pylist() == ["pickup_in_month"]


def test_unknown_rule_names_are_refused_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"passenger_count_is_positive.*pickup_required.*non_negative_total"):
        Cleaner(YELLOW, MONTH, enabled=["pickup_required", "passenger_count_is_positive"], valid_location_ids=ZONES)


def test_rules_of_other_services_are_ignored_quietly():
    cleaner = Cleaner(FHV, MONTH, enabled=["passenger_count_positive", "pickup_in_month"], valid_location_ids=ZONES)
    assert cleaner.rule_names == ["pickup_in_month"] and cleaner.counts == {"pickup_in_month": 0}


def test_location_rule_needs_the_zone_ids():
    with pytest.raises(ValueError, match="valid_location_ids"):
        Cleaner(YELLOW, MONTH)
    Cleaner(YELLOW, MONTH, enabled=["pickup_in_month"])  # not needed when the rule is off


@pytest.mark.parametrize("ids", [pa.array([100, 200], pa.int64()), pa.chunked_array([[100], [200]], pa.int32()),
                                 {100, 200}, range(100, 201, 100)], ids=["array", "chunked", "set", "range"])
def test_valid_location_ids_in_any_shape(ids):
    kept, rejected = split(Cleaner(GREEN, MONTH, valid_location_ids=ids), batch(GREEN, {"pickup_location_id": 101}))
    assert kept.num_rows == 1 and rejected.column(REJECT_RULE).to_pylist() == ["known_location_ids"]


def test_batches_must_be_canonical():
    wrong = pa.RecordBatch.from_pylist([{"pickup_datetime": T0}])
    with pytest.raises(ValueError, match="canonical"):
        split(Cleaner(YELLOW, MONTH, valid_location_ids=ZONES), wrong)


def test_schemas_counts_and_invariant_over_several_batches():
    cleaner = Cleaner(YELLOW, MONTH, valid_location_ids=ZONES)
    totals = Counter()
    for changes in [list(BREAKERS.values()), [BREAKERS["pickup_in_month"]] * 3, []]:
        b = batch(YELLOW, *changes)
        kept, rejected = split(cleaner, b)
        assert kept.schema.equals(YELLOW.schema) and rejected.schema.equals(REJECTS_SCHEMA(YELLOW))
        assert kept.num_rows + rejected.num_rows == b.num_rows
        totals.update(rejected.column(REJECT_RULE).to_pylist())
    assert cleaner.counts == {**dict.fromkeys(BREAKERS, 1), "pickup_in_month": 4} == {**cleaner.counts, **totals}
    assert (cleaner.rows_in, cleaner.rows_kept) == (8 + 4 + 1, 3)
    empty = pa.RecordBatch.from_pylist([], schema=YELLOW.schema)
    kept, rejected = split(cleaner, empty)
    assert kept.num_rows == rejected.num_rows == 0 and rejected.schema.equals(REJECTS_SCHEMA(YELLOW))


def test_dictionary_encoded_text_is_judged_and_its_rejected_rows_are_plain_text():
    """A parquet file's dictionary-encoded text comes as dictionaries (raw_reader): the cleaner
    judges those batches as it does plain ones, and the rejected rows it keeps hold plain text."""
    plain = batch(FHVHV, BREAKERS["pickup_in_month"], {"hvfhs_license_num": "HV0005", "dispatching_base_num": None})
    text = ["hvfhs_license_num", "dispatching_base_num", "originating_base_num"]
    encoded = pa.RecordBatch.from_arrays(
        [c.dictionary_encode() if name in text else c for name, c in zip(plain.schema.names, plain.columns)],
        names=plain.schema.names,
    )
    assert pa.types.is_dictionary(encoded.schema.field("hvfhs_license_num").type)
    cleaner = Cleaner(FHVHV, MONTH, valid_location_ids=ZONES)
    keep, rejected = cleaner.judge(encoded)
    assert keep.to_pylist() == [True, False, True]
    assert rejected.schema.equals(REJECTS_SCHEMA(FHVHV))
    assert rejected.to_pylist() == [{**plain.slice(1, 1).to_pylist()[0], REJECT_RULE: "pickup_in_month"}]
    kept = encoded.filter(keep)
    assert pa.Table.from_batches([kept]).cast(FHVHV.schema).to_pylist() == plain.filter(keep).to_pylist()
    wrong = pa.RecordBatch.from_arrays(  # only text may come dictionary-encoded
        [c.cast(pa.int32()).dictionary_encode() if name == "pickup_location_id" else c for name, c in zip(plain.schema.names, plain.columns)],
        names=plain.schema.names,
    )
    with pytest.raises(ValueError, match="canonical"):
        cleaner.judge(wrong)


def test_rejects_schema():
    schema = REJECTS_SCHEMA(FHV)
    assert schema.names == FHV.schema.names + [REJECT_RULE] and schema.field(REJECT_RULE).type == pa.string()


# ---------------------------------------------------------------------------------------------------------------
# The real green 2020-10 sample, against an independent plain-Python reading of the rules.

GREEN_OCT = dt.date(2020, 10, 1)


def _green_batches():
    path = sample("green_tripdata_2020-10_sample1000.parquet")
    return list(iter_canonical_batches(path, GREEN, GREEN_OCT, "parquet", path.name, batch_rows=300))


def test_real_zone_lookup_is_1_to_265():
    assert valid_location_ids() == ZONES


def test_green_sample_pickup_in_month():
    source = pq.read_table(sample("green_tripdata_2020-10_sample1000.parquet")).to_pylist()
    outside = sum(not dt.datetime(2020, 10, 1) <= r["lpep_pickup_datetime"] < dt.datetime(2020, 11, 1)
                  for r in source)
    assert outside > 0  # the sample includes pickups on 2020-09-30
    cleaner = Cleaner(GREEN, GREEN_OCT, enabled=["pickup_in_month"])
    kept = rejected = 0
    for b in _green_batches():
        k, r = split(cleaner, b)
        kept, rejected = kept + k.num_rows, rejected + r.num_rows
        assert set(r.column(REJECT_RULE).to_pylist()) <= {"pickup_in_month"}
        assert all(p < dt.datetime(2020, 10, 1) for p in r.column("pickup_datetime").to_pylist())
    assert rejected == outside == cleaner.counts["pickup_in_month"]
    assert kept + rejected == 1000 == cleaner.rows_in


def _first_failing_rule(r: dict, zones: set[int]) -> str | None:
    """The rules in plain Python, written from their descriptions (None compares as failing)."""
    start, end = dt.datetime(2020, 10, 1), dt.datetime(2020, 11, 1)
    pickup, dropoff = r["lpep_pickup_datetime"], r["lpep_dropoff_datetime"]
    checks = [
        ("pickup_required", pickup is not None),
        ("pickup_in_month", pickup is not None and start <= pickup < end),
        ("dropoff_not_before_pickup", None not in (pickup, dropoff) and dropoff >= pickup),
        ("known_location_ids", r["PULocationID"] in zones and r["DOLocationID"] in zones),
        ("passenger_count_positive", r["passenger_count"] is not None and r["passenger_count"] > 0),
        ("trip_distance_positive", r["trip_distance"] is not None and r["trip_distance"] > 0),
        ("non_negative_total", r["total_amount"] is not None and r["total_amount"] >= 0),
    ]
    return next((name for name, ok in checks if not ok), None)


def test_green_sample_default_rules_match_plain_python():
    zones = valid_location_ids()
    source = pq.read_table(sample("green_tripdata_2020-10_sample1000.parquet")).to_pylist()
    expected = [_first_failing_rule(r, zones) for r in source]
    cleaner = Cleaner(GREEN, GREEN_OCT, valid_location_ids=pa.array(sorted(zones)))
    kept_rows, reasons = [], []
    for b in _green_batches():
        kept, rejected = split(cleaner, b)
        kept_rows += kept.to_pylist()
        reasons += rejected.column(REJECT_RULE).to_pylist()
    assert reasons == [e for e in expected if e is not None]
    assert Counter(reasons) == {k: v for k, v in cleaner.counts.items() if v}
    assert len(kept_rows) == expected.count(None) == cleaner.rows_kept
    assert len(kept_rows) + len(reasons) == 1000
    assert all(r["passenger_count"] > 0 and r["trip_distance"] > 0 for r in kept_rows)
    assert len(set(reasons)) >= 3  # the sample really exercises several rules
