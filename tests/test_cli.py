"""Every command is listed and documented."""
import click
from click.testing import CliRunner

from hub.cli import main
from tests.conftest import BUILT_IN_CONNECTORS

COMMANDS = ["connectors", "db", "deliveries", "inbox", "profiles", "rebuild", "replay", "segments", "serve", "sync",
            "worker"]
SUBCOMMANDS = {"connectors": ["check", "list"], "db": ["current", "upgrade"], "deliveries": ["replay"],
               "inbox": ["stats"], "profiles": ["show", "unmerge"], "segments": ["refresh"]}


def test_hub_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert sorted(main.commands) == COMMANDS
    for name in COMMANDS:
        assert f"  {name} " in result.output


def test_every_command_has_help():
    runner = CliRunner()
    for name, command in main.commands.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert command.help and len(command.help) > 20
        if isinstance(command, click.Group):
            assert sorted(command.commands) == SUBCOMMANDS[name]
            for sub, subcommand in command.commands.items():
                result = runner.invoke(main, [name, sub, "--help"])
                assert result.exit_code == 0, (name, sub, result.output)
                assert subcommand.help and len(subcommand.help) > 20


def test_connectors_list_and_check(tmp_path, monkeypatch):
    config = tmp_path / "hub.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path}/x.db\nplugins: [tests.plugins.echo]\n"
                      "connectors: {echo: {enabled: true, webhook_secret: s}}\n")
    runner = CliRunner()
    listed = runner.invoke(main, ["--config", str(config), "connectors", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == ["echo             enabled   tests.plugins.echo"] + [
        f"{name:<16} disabled  connectors.{name}" for name in BUILT_IN_CONNECTORS]
    checked = runner.invoke(main, ["--config", str(config), "connectors", "check"])
    assert (checked.exit_code, checked.output) == (0, "echo: configuration ok\n")
    config.write_text(f"database_url: sqlite:///{tmp_path}/x.db\n")
    none = runner.invoke(main, ["--config", str(config), "connectors", "check"])
    assert none.exit_code == 1


def test_worker_refuses_the_embedded_mode(tmp_path):
    config = tmp_path / "hub.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path}/x.db\n")
    result = CliRunner().invoke(main, ["--config", str(config), "worker", "--burst"])
    assert result.exit_code == 2
    assert "hub worker needs redis_url" in result.output
