"""The statistics extract: the row intake and casework write and statistics reads (docs/statistics.md)."""
