"""Fail on known vulnerabilities in the pinned production dependencies (`make audit`, part of `make test`).

pip-audit does the work. It asks PyPI's per-release JSON, which some mirrors (this project's build machine
among them) do not serve: pip-audit then reports the package as skipped and still says "No known
vulnerabilities found". A skipped package is not an audited one, so for each of them we ask the project-level
JSON, whose `vulnerabilities` are those of the latest release: when our pin is that release, the answer is
exact. Whatever is left unaudited is printed by name, never passed over in silence.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "production.txt"


def pip_audit() -> list[dict[str, object]]:
    report = subprocess.run(  # noqa: S603 - our own pip-audit, fixed arguments
        [
            str(Path(sys.executable).with_name("pip-audit")),
            "--progress-spinner",
            "off",
            "--disable-pip",
            "--require-hashes",
            "-r",
            str(LOCK),
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if report.returncode not in (0, 1):  # 1 means "vulnerabilities found", which the JSON carries
        sys.exit(f"pip-audit failed ({report.returncode}):\n{report.stderr}")
    deps: list[dict[str, object]] = json.loads(report.stdout)["dependencies"]
    return deps


def latest_release_vulns(name: str, version: str) -> list[str] | None:
    """The vulnerabilities of `name==version` if it is the latest release, else None (cannot tell)."""
    url = f"https://pypi.org/pypi/{name}/json"
    try:
        with urllib.request.urlopen(url, timeout=15) as response:  # fixed https URL  # nosec B310
            project = json.load(response)
    except OSError:
        return None
    if project["info"]["version"] != version:
        return None
    return [str(v["id"]) for v in project.get("vulnerabilities", [])]


def pins() -> dict[str, str]:
    text = LOCK.read_text()
    return {name.lower(): version for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def main() -> int:
    pinned = pins()
    deps = pip_audit()
    found: list[str] = []
    unaudited: list[str] = []
    by_pip_audit = by_latest = 0
    for dep in deps:
        name = str(dep["name"])
        version = str(dep.get("version") or pinned.get(name.lower(), "?"))
        if "skip_reason" not in dep:
            by_pip_audit += 1
            vulns_found = dep.get("vulns", [])
            assert isinstance(vulns_found, list)
            found += [f"{name}=={version}: {v['id']}" for v in vulns_found]
            continue
        vulns = latest_release_vulns(name, version)
        if vulns is None:
            unaudited.append(f"{name}=={version}")
            continue
        by_latest += 1
        found += [f"{name}=={version}: {v}" for v in vulns]
    print(
        f"audit: {len(deps)} pinned packages; {by_pip_audit} audited by pip-audit, "
        f"{by_latest} by PyPI's latest-release data, {len(unaudited)} not audited"
    )
    if unaudited:
        print("  not audited (no vulnerability data reachable for these releases): " + ", ".join(unaudited))
    for line in found:
        print(f"  VULNERABLE {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
