"""The TLC taxi zone lookup, read so that the zone named "NA" stays a name, not a null."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

ZONES_SCHEMA = pa.schema(
    [
        pa.field("location_id", pa.int32(), nullable=False),
        pa.field("borough", pa.string()),
        pa.field("zone", pa.string()),
        pa.field("service_zone", pa.string()),
    ]
)
#: The lookup file as the TLC publishes it (taxi_zone_lookup.csv), before its columns are renamed.
LOOKUP_FILE_SCHEMA = pa.schema(
    [("LocationID", pa.int32()), ("Borough", pa.string()), ("Zone", pa.string()), ("service_zone", pa.string())]
)
_SOURCE_NAMES = {"locationid": "location_id", "borough": "borough", "zone": "zone", "service_zone": "service_zone"}


class ZoneLookupError(ValueError):
    pass


def read_zone_lookup(path: Path) -> pa.Table:
    """Parse the lookup CSV (quoted, CRLF) into ZONES_SCHEMA.

    pandas and Arrow both treat "NA" and "N/A" as null by default; zone 265 is literally named
    "NA" and service_zone "N/A" is a real value, so no string counts as null here.
    """
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                null_values=[""],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                column_types={"LocationID": pa.int32()},
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise ZoneLookupError(f"zone lookup {path.name}: cannot be read: {exc}") from exc
    names = {c.lower(): c for c in table.column_names}
    missing = [n for n in _SOURCE_NAMES if n not in names]
    if missing:
        raise ZoneLookupError(f"zone lookup {path.name}: missing columns {missing}; has {table.column_names}")
    table = pa.table({target: table.column(names[src]) for src, target in _SOURCE_NAMES.items()})
    table = table.cast(ZONES_SCHEMA)
    if table.num_rows == 0 or len(set(table.column("location_id").to_pylist())) != table.num_rows:
        raise ZoneLookupError(f"zone lookup {path.name}: {table.num_rows} rows, empty or with repeated LocationIDs")
    return table
