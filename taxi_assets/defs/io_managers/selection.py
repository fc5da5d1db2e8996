"""Which partitions a step writes, and which upstream partitions an input reads."""

from __future__ import annotations

import dagster as dg


def output_partition(context: dg.OutputContext) -> str | None:
    """The one partition an output replaces; None for an unpartitioned asset.

    Read from the asset's own partitions, not the run's `dagster/partition` tag: a run launched by
    an asset backfill of an asset with a backfill policy (a user's own, say) carries a partition
    *range*, of one partition at most here, and falling back to "unpartitioned" would replace a
    whole table with one partition.
    """
    if not context.has_asset_partitions:
        return None
    keys = context.asset_partition_keys
    if len(keys) == 1:
        return keys[0]
    raise ValueError(
        f"{context.asset_key.to_user_string()}: one partition per step, got {keys[0]}..{keys[-1]} "
        f"({len(keys)}); run it one month per run (no backfill policy, like the platform's assets)"
    )


def input_partitions(context: dg.InputContext) -> list[str] | None:
    """The upstream partitions an input reads, in order; None for every landed one.

    One month for a monthly consumer; the months its partition mapping gives (a yearly asset: 12);
    every landed month for an unpartitioned consumer (and for an unpartitioned upstream, None).
    """
    if not context.has_asset_partitions:
        return None
    step = _step(context)
    in_range = step is not None and step.has_partition_key_range
    if not context.has_partition_key and not in_range:
        return None
    keys = list(context.asset_partition_keys)
    if len(keys) > 1 and keys == list(context.asset_partitions_def.get_partition_keys()):
        # An asset check's input is given the whole partitions definition: keep the run's partitions.
        if in_range:
            return list(context.asset_partitions_def.get_partition_keys_in_range(step.partition_key_range))
        if context.partition_key in keys:
            return [context.partition_key]
    return keys


def _step(context: dg.InputContext):
    try:
        return context.step_context
    except dg.DagsterInvariantViolationError:
        return None
