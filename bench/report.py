"""One report of every benchmark's figures: reads bench/results/*.json, prints a table, writes report.json.

`make bench` runs the benchmarks and then this. A benchmark that has not been run is listed as such, never
left out; each row says what was measured, the target and whether it was met.

Usage: python bench/report.py
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

Row = tuple[str, str, str, bool | None]


def _intake(d: dict[str, Any]) -> list[Row]:
    intake, base = d["intake"], d["baseline"]
    rates = f"{intake['max']['rate_per_s']:.0f}/s vs {base['max']['rate_per_s']:.0f}/s"
    single = intake["one_connection"]["p50_ms"]
    return [
        (
            "intake: rate vs bare insert",
            f"{rates}, ratio {d['ratio']:.2f}",
            ">= 0.5",
            d["met"]["ratio"],
        ),
        (
            "intake: p99 at half the rate",
            f"{intake['half_rate']['p99_ms']:.1f} ms (p50 at 1 connection {single:.1f} ms)",
            "< 50 ms",
            d["met"]["p99_at_half_rate"],
        ),
    ]


def _login(d: dict[str, Any]) -> list[Row]:
    return [
        (
            "intake during a sign-in flood",
            f"{d['intake_share_under_flood']:.2f} of its rate alone",
            f">= {d['target']['intake_share_at_least']}",
            d["met"],
        )
    ]


def _uploads_loop(d: dict[str, Any]) -> list[Row]:
    during, uploads = d["intake_during_uploads"], d["uploads"]
    return [
        (
            "JSON intake while 16 MP images arrive",
            f"p99 {during['p99_ms']:.1f} ms ({uploads['images_per_s']:.1f} images/s cleaned)",
            f"< {d['target']['p99_ms_below']:.0f} ms",
            d["met"],
        )
    ]


def _notify(d: dict[str, Any]) -> list[Row]:
    return [
        (
            f"notification latency ({run['broker']})",
            f"p50 {run['p50_s']:.2f} s, p99 {run['p99_s']:.2f} s, {run['lost']} lost",
            f"p99 < {d['target_p99_s']} s, 0 lost",
            run["p99_s"] < d["target_p99_s"] and run["lost"] == 0,
        )
        for run in d["runs"]
    ]


def _dashboard(d: dict[str, Any]) -> list[Row]:
    pages = d["pages"]
    worst = max(page["p95_ms"] for page in pages.values())
    return [
        (
            f"dashboard, {d['rows']:,} rows",
            f"release {d['public_release_seconds']:.1f} s, snapshot {d['snapshot_seconds']:.1f} s, "
            f"pages p95 <= {worst:.0f} ms",
            "see bench/dashboard.py",
            d["met"],
        )
    ]


def _memory(d: dict[str, Any]) -> list[Row]:
    return [
        (
            "api RSS at rest / under load",
            f"{d['rss_at_rest_mb']:.0f} MB / {d['rss_peak_under_load_mb']:.0f} MB",
            "< 150 MB",
            d["met"]["rss_at_rest"] and d["met"]["rss_under_load"],
        ),
        (
            "50 MB upload / download, extra RSS",
            f"+{d['upload']['extra_mb']:.1f} MB / +{d['download']['extra_mb']:.1f} MB",
            "< 20 MB",
            d["met"]["upload_extra"] and d["met"]["download_extra"],
        ),
    ]


def _generic(d: dict[str, Any]) -> list[Row]:
    """Benchmarks that describe their own rows: {"rows": [{"what", "figure", "target", "met"}]}."""
    return [(row["what"], row["figure"], row["target"], row["met"]) for row in d.get("report_rows", [])]


READERS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "intake": _intake,
    "login_flood": _login,
    "uploads_loop": _uploads_loop,
    "notify": _notify,
    "memory": _memory,
    "dashboard": _dashboard,
    "scaleout": _generic,
    "faults": _generic,
}


def collect() -> list[dict[str, Any]]:
    report = []
    for name, reader in READERS.items():
        path = RESULTS / f"{name}.json"
        if not path.exists():
            report.append({"bench": name, "what": name, "figure": "not run", "target": "", "met": None})
            continue
        data = json.loads(path.read_text())
        written = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        try:
            rows = reader(data)
        except (KeyError, TypeError) as exc:
            rows = [(name, f"unreadable results ({exc!r}); run it again", "", False)]
        for what, figure, target, met in rows:
            report.append(
                {"bench": name, "what": what, "figure": figure, "target": target, "met": met, "at": written}
            )
    return report


def main() -> int:
    report = collect()
    width = max(len(row["what"]) for row in report)
    for row in report:
        verdict = {True: "met", False: "NOT MET", None: "-"}[row["met"]]
        print(f"{row['what']:<{width}}  {row['figure']:<60}  {row['target']:<22}  {verdict}")
    (RESULTS / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"written to bench/results/report.json ({len(report)} rows)")
    return 1 if any(row["met"] is False for row in report) else 0


if __name__ == "__main__":
    sys.exit(main())
