"""The coordinators' dashboard: the catalogue of exact counts, primary, dominance and secondary suppression,
the LP release gate, the monthly snapshots and their pages (docs/statistics.md). Never shown to the public."""
