"""One report of every benchmark's figures: reads bench/results/*.json, prints a table, writes report.json.

`make bench` runs the benchmarks and then this. A benchmark that has not been run is listed as such, never
left out; each row says what was measured, the target and whether it was met.

Usage: python -m bench.report
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
    if "closed_loop" not in d:  # written before wrk drove the rate
        return [("intake: rate vs bare insert", f"ratio {d['ratio']:.2f} (Python client)", ">= 0.5", None)]
    first = d["closed_loop"][str(d["connections"][0])]
    intake, base = first["intake"]["median_round"], first["baseline"]["median_round"]
    rates = f"{intake['rate_per_s']:.0f}/s vs {base['rate_per_s']:.0f}/s"
    half = d["half_rate"]["intake"]
    paced = d["half_rate"]["target_rate_per_s"]
    single = d["one_connection"]["intake"]["p50_ms"]
    return [
        (
            f"intake: rate vs bare insert ({d['client']}, {d['connections'][0]} connections)",
            f"{rates}, ratio {d['ratio']:.2f}",
            ">= 0.5",
            d["met"]["ratio"],
        ),
        (
            "intake: p99 at half the rate",
            f"{half['p99_ms']:.1f} ms at {paced:.0f}/s (p50 at 1 connection {single:.1f} ms)",
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
    rows: list[Row] = []
    target = d["target_p99_s"]
    for run in d["runs"]:
        idle = run.get("idle")
        if idle is not None:
            rows.append(
                (
                    f"notification latency from idle ({run['broker']})",
                    f"p50 {idle['p50_s']} s, p99 {idle['p99_s']} s, {idle['lost']} lost",
                    f"p99 < {target} s, 0 lost",
                    idle["p99_s"] is not None and idle["p99_s"] < target and idle["lost"] == 0,
                )
            )
        rows.append(
            (
                f"notification latency ({run['broker']})",
                f"p50 {run['p50_s']} s, p99 {run['p99_s']} s, {run['lost']} lost",
                f"p99 < {target} s, 0 lost",
                run["p99_s"] is not None and run["p99_s"] < target and run["lost"] == 0,
            )
        )
    return rows


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
    report: list[dict[str, Any]] = []
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
