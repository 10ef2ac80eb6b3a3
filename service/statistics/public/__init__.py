"""The public release: differentially private figures, their budget ledger and release store, the /statistik
pages and the open-data downloads (docs/statistics.md). Reads the extract, never the coordinators' snapshots.
"""
