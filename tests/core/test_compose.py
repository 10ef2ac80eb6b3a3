"""docker-compose.yml cannot run here (no Docker engine); this keeps it in step with what the tests run."""

from __future__ import annotations

import re

import yaml

from service.config import PROJECT_ROOT, SECRET_NAMES, Settings
from service.serving import Served
from service.supervisor import commands

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def test_compose_runs_api_worker_beat_postgres_and_redis_with_health_checks() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"api", "worker", "beat", "db", "redis", "migrate"} <= set(services)
    for name in ("api", "worker", "beat", "db", "redis"):
        assert "healthcheck" in services[name], name
    assert services["db"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")


def test_worker_and_beat_run_the_commands_that_rueckhalt_up_runs() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    ours = commands("127.0.0.1", 8000, 1)
    for name in ("worker", "beat"):
        compose_argv = services[name]["command"]
        # Same app and subcommand as the supervisor (which prefixes `python -m`).
        assert compose_argv[:4] == ours[name][2:6], name
    assert "--queues" in services["worker"]["command"]


def test_every_setting_in_compose_exists_and_every_secret_is_named() -> None:
    text = COMPOSE.read_text()
    names = set(re.findall(r"RUECKHALT_([A-Z_]+)", text))
    fields = {name.upper() for name in Settings.model_fields}
    assert names <= fields, names - fields
    for secret in SECRET_NAMES:
        assert f"RUECKHALT_{secret.upper()}" in text, secret


def test_the_api_knows_its_proxy_and_leaves_forwarded_headers_to_the_service() -> None:
    """The proxy on the host connects through the network's gateway: that is the trusted proxy (issue 14.1).
    uvicorn's own proxy handling stays off (it would trust the left-most hop, and only 127.0.0.1)."""
    import ipaddress

    compose = yaml.safe_load(COMPOSE.read_text())
    api = compose["services"]["api"]
    command = " ".join(api["command"])
    # The api runs as `rueckhalt serve` runs it here (tests/core/test_serving.py), whose uvicorn settings
    # leave proxy headers, the access log and the Server header off.
    assert command == "rueckhalt serve --host 0.0.0.0 --port 8000 --workers auto"
    assert "--forwarded-allow-ips" not in command
    config = Served().config()
    assert (config.proxy_headers, config.access_log, config.server_header) == (False, False, False)
    environment = {**compose["x-app"]["environment"], **api.get("environment", {})}
    assert environment["RUECKHALT_BEHIND_TLS"] == "true"
    default = re.fullmatch(
        r"\$\{RUECKHALT_TRUSTED_PROXIES:-([^}]+)\}", environment["RUECKHALT_TRUSTED_PROXIES"]
    )
    assert default, "an operator can name another proxy; the default is the gateway"
    gateway = compose["networks"]["default"]["ipam"]["config"][0]["gateway"]
    assert ipaddress.ip_address(gateway) in ipaddress.ip_network(default.group(1))
    assert Settings(trusted_proxies=default.group(1)).trusted_networks


def test_the_backup_service_runs_on_demand_with_the_data_volume_and_a_matching_pg_dump() -> None:
    """The scheduled backup (docs/backup.md): a service a host timer runs (profile "backup", not started with
    the others) that backs up and prunes into ./backups, sees the blob volume as the api does, and an image
    whose pg_dump has the major version of the compose file's PostgreSQL (an older one refuses the server)."""
    compose = yaml.safe_load(COMPOSE.read_text())
    backup = compose["services"]["backup"]
    assert backup["profiles"] == ["backup"]
    assert backup["restart"] == "no"
    script = backup["command"][-1]
    assert script.startswith("rueckhalt backup /backups && rueckhalt backup prune /backups")
    assert "blobs:/data" in backup["volumes"]
    assert compose["x-app"]["environment"]["RUECKHALT_DATA_DIR"] == "/data"
    major = compose["services"]["db"]["image"].split(":")[1]
    assert f"postgresql-client-{major}" in (PROJECT_ROOT / "Dockerfile").read_text()


def test_each_stop_waits_longer_than_the_one_it_wraps() -> None:
    """Compose's SIGKILL after the api's stop_grace_period, `rueckhalt up`'s after its own grace: both
    later than the workers' stop (service/serving.py), which is later than uvicorn's graceful shutdown."""
    from service import serving, supervisor

    api = yaml.safe_load(COMPOSE.read_text())["services"]["api"]
    compose_grace = float(api["stop_grace_period"].removesuffix("s"))
    assert serving.GRACEFUL_SHUTDOWN_SECONDS < serving.STOP_GRACE_SECONDS
    assert serving.STOP_GRACE_SECONDS < supervisor.STOP_GRACE_SECONDS
    assert compose_grace > serving.STOP_GRACE_SECONDS
