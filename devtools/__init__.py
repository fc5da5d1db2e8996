"""Development tooling, not shipped: the month generator, the offline HTTP mirror, the demo."""
