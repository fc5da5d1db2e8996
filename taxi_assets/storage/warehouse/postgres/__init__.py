"""The Postgres warehouse: one partition per month, replaced by an atomic swap, loaded by binary COPY.

Layout. A monthly table (a `TableSpec` with a month column) is a parent table
`PARTITION BY RANGE (<month column>)` with one child per month, `{table}_pYYYYMM`. The month column is
a DATE column the platform owns (the first day of the month of the file a row came from), never the pickup
time, so a row whose pickup falls in another month still belongs to exactly one month and
cannot survive a re-run. The parent has a BRIN index on the spec's time column (rows arrive in
its order) and a btree per group of the spec's index columns; each child carries its own copy of
them. The time column is named in the table's comment. Small tables (the zones) are plain tables
with a primary key on the spec's key columns.

Replacing a month, all in one transaction:
 1. create a standalone table with the parent's columns (its definition is read from the
    catalog, so no lock on the live table is taken while loading) and a CHECK (<month column> =
    <month>) constraint, which (with the column NOT NULL) proves the partition bound, so ATTACH
    skips its own scan;
 2. binary COPY the month into it (FREEZE: it was created in this transaction), streamed from
    Arrow record batches (pg_copy.py), checking on the way that every row carries this month in
    its month column (and the server checks each row against the CHECK as it arrives). A mart month
    is a CREATE TABLE AS of its SELECT instead, which Postgres may run in parallel workers (an
    INSERT ... SELECT never is), and gets its NOT NULL and CHECK once its few rows are in;
 3. build the parent's indexes on it; ANALYZE;
 4. the swap: DETACH and DROP the month's old child, ATTACH the new table as the month's child,
    rename it. Only this step locks the parent (ACCESS EXCLUSIVE, for milliseconds); it runs
    under a short lock_timeout in a savepoint and is retried, so a long report query holding the
    table makes us wait, rather than making every other reader queue behind us.
 5. COMMIT.
Until the commit, readers see the old month (the live table is untouched); after it, the new one.
A reader arriving during step 4 waits for the commit and then sees the new month: READ COMMITTED
statements take their snapshot after their locks, so never an empty or a partial month. A load
that fails or is killed anywhere (the server rolls back the transaction when the client's
connection drops) leaves the old month exactly as it was and nothing behind. Two loads of the
same month are serialised by an advisory lock; different months load concurrently and only
their swaps take turns. (A REPEATABLE READ transaction that started before the swap and reads
the month afterwards sees the new child too: the COPY wrote its rows frozen, visible to every
snapshot. A mart month, written by CREATE TABLE AS, would look empty to such a transaction:
the caveat every DDL swap in Postgres has.)

Money columns are `double precision`, not numeric(12,2). The TLC publishes them as doubles and
our canonical schema keeps them float64, so double precision stores exactly the values the lake
holds (numeric(12,2) would round values with more than two decimals and overflow on the TLC's
occasional absurd amounts), reads back as the same float64, computes the marts with the same
arithmetic as the embedded DuckDB warehouse (same figures to the cent), and costs 8 fixed bytes
in the COPY stream instead of a variable-length numeric. Cents are exact where it matters: 12.35
goes in and comes out as the same double, and sums are rounded to cents in the marts.
"""

from taxi_assets.storage.warehouse.postgres.catalog import derived_name
from taxi_assets.storage.warehouse.postgres.warehouse import SERVER_SETTINGS, PostgresWarehouse

__all__ = ["SERVER_SETTINGS", "PostgresWarehouse", "derived_name"]
