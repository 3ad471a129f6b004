"""docker-compose.yml is checked against what the hub really reads (no Docker engine here)."""
from urllib.parse import urlparse

import click
import tomllib
import yaml

from hub.cli import main
from hub.config import ENVIRONMENT, normalize_database_url
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def command_of(service):
    """Parse the service's ``hub ...`` command with the real CLI; return the leaf command and its params."""
    argv = SERVICES[service]["command"]
    assert argv[0] == "hub"
    group, args = main, list(argv[1:])
    while isinstance(group, click.Group):
        name, *args = args
        group = group.commands[name]
    return group.name, group.make_context(group.name, args).params


def test_services_and_images():
    assert sorted(SERVICES) == ["migrate", "postgres", "redis", "web", "worker"]
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    for name in ("migrate", "web", "worker"):
        assert SERVICES[name]["build"] == "."
        assert SERVICES[name]["image"] == "tributary:latest"


def test_commands_are_real_hub_commands():
    assert command_of("migrate") == ("upgrade", {"revision": "head"})
    name, params = command_of("web")
    assert name == "serve"
    assert (params["host"], params["port"], params["workers"]) == ("0.0.0.0", 8000, 4)
    assert SERVICES["web"]["ports"] == ["8000:8000"]
    assert command_of("worker") == ("worker", {"burst": False, "metrics_port": None})
    assert SERVICES["worker"]["deploy"]["replicas"] >= 2


def test_health_checks_and_start_order():
    for name in ("postgres", "redis", "web"):
        assert SERVICES[name]["healthcheck"]["test"][0] == "CMD"
    assert "http://127.0.0.1:8000/healthz" in " ".join(SERVICES["web"]["healthcheck"]["test"])
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "worker"):
        assert SERVICES[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }


def test_environment_matches_the_settings_the_hub_reads():
    postgres = SERVICES["postgres"]["environment"]
    for name in ("migrate", "web", "worker"):
        env = SERVICES[name]["environment"]
        assert set(env) <= set(ENVIRONMENT)
        assert set(env) == {"HUB_CONFIG", "HUB_DATABASE_URL", "HUB_REDIS_URL"}
        db = urlparse(env["HUB_DATABASE_URL"])
        assert normalize_database_url(env["HUB_DATABASE_URL"]).startswith("postgresql+psycopg://")
        assert (db.hostname, db.port, db.username, db.password, db.path) == (
            "postgres", 5432, postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"],
            "/" + postgres["POSTGRES_DB"])
        redis = urlparse(env["HUB_REDIS_URL"])
        assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
        mounted = {v.split(":")[1] for v in SERVICES[name]["volumes"]}
        assert env["HUB_CONFIG"] in mounted


def test_the_image_holds_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} {package}" in dockerfile
    assert "pip install --no-cache-dir ." in dockerfile
