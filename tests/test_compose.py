"""Docker Compose deployment: valid for every variant, and in agreement with config.yml.

No Docker engine is needed: `docker-compose config` validates and resolves the compose files,
and the agreement checks read docker-compose.yml, config.yml and the Dockerfile as the
containers will see them (the values of .env.example, as after `cp .env.example .env`).
"""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
GPU_OVERRIDE = ROOT / "docker" / "compose.gpu.yml"
CONFIG = ROOT / "config.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"

APP_DIR = PurePosixPath("/app")  # WORKDIR of the image; config.yml's relative paths resolve here
OLLAMA_PORT = 11434  # what ollama/ollama serves on
COMPOSE_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)-([^}]*))?\})")


# ---- reading the files as the containers see them ---------------------------------------------


def env_file(path: Path) -> dict:
    """KEY=value lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def compose_interpolate(value, env: dict):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and $$ in every string of a YAML tree."""
    if isinstance(value, dict):
        return {key: compose_interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [compose_interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match):
        name, colon, default = match.groups()
        if name is None:
            return "$"
        if default is None:
            return env.get(name, "")
        unset = name not in env or (colon and env[name] == "")
        return default if unset else env[name]

    return COMPOSE_VARIABLE.sub(replace, value)


def environment(service: dict) -> dict:
    """A service's `environment`, as a dict whether written as a mapping or a list."""
    items = service.get("environment") or {}
    if isinstance(items, list):
        items = dict(item.split("=", 1) if "=" in item else (item, "") for item in items)
    return {key: "" if value is None else str(value) for key, value in items.items()}


def mounts(service: dict) -> dict:
    """Container path -> (source, read_only) for a service's short-syntax volumes."""
    table = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        table[target] = (source, "ro" in "".join(mode).split(","))
    return table


def published(service: dict) -> list[tuple[str, int]]:
    """(host part, container port) of each `ports` entry, short syntax or Compose v2's long one."""
    ports = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.append((f"{entry.get('host_ip', '')}:{entry.get('published', '')}", int(entry["target"])))
            continue
        entry = str(entry).split("/")[0]
        host, _, container = entry.rpartition(":")
        ports.append((host, int(container)))
    return ports


def in_container(path) -> PurePosixPath:
    """A path from config.yml as the app container sees it: relative paths are under /app."""
    path = PurePosixPath(str(path))
    return path if path.is_absolute() else APP_DIR / path


def final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's last stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    start = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[start:]


def image_env() -> dict:
    """ENV of the Dockerfile's last stage: the container's environment before compose adds to it."""
    values = {}
    for word, rest in final_stage():
        if word == "ENV":
            parts = shlex.split(rest)
            pairs = [part.split("=", 1) for part in parts] if "=" in parts[0] else [(parts[0], " ".join(parts[1:]))]
            values.update(pairs)
    return values


@pytest.fixture(scope="module")
def deployment():
    """The compose file, the app's environment and config.yml resolved as in the container."""
    from rag.config import interpolate, overrides

    dotenv = env_file(ENV_EXAMPLE)
    compose = compose_interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")), dotenv)
    app = compose["services"]["app"]
    app_env = {**image_env(), **dotenv, **environment(app)}  # image ENV, env_file (.env), `environment`
    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config = overrides(interpolate(raw, app_env), app_env)
    return compose, app_env, config


def key(config: dict, dotted: str):
    """config.yml value at a dotted key; a missing key fails naming it."""
    node = config
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"config.yml has no {dotted}"
        node = node[part]
    return node


# ---- (a) docker-compose config for every variant ----------------------------------------------


def compose_command():
    """docker-compose (Debian package), else the `docker compose` plugin, else None."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def profiles() -> list[str]:
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    return sorted({name for service in services.values() for name in service.get("profiles", [])})


VARIANTS = {
    "default": ["-f", str(COMPOSE)],
    "gpu": ["-f", str(COMPOSE), "-f", str(GPU_OVERRIDE)],
    **{f"profile-{name}": ["-f", str(COMPOSE), "--profile", name] for name in profiles()},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_compose_config_is_valid(variant):
    command = compose_command()
    if command is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        [*command, "--env-file", str(ENV_EXAMPLE), *VARIANTS[variant], "config"],
        cwd=ROOT,
        # only .env.example decides (standing in for .env), not the caller's COMPOSE_* or RAG_*
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "RAG_ENV_FILE": str(ENV_EXAMPLE)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"app", "ollama", "ollama-pull"} <= set(services)
    if variant == "gpu":
        devices = services["ollama"]["deploy"]["resources"]["reservations"]["devices"]
        assert any(device.get("driver") == "nvidia" and "gpu" in device["capabilities"] for device in devices)
    if variant == "profile-expose-ollama":
        assert any(port == OLLAMA_PORT for service in services.values() for _, port in published(service))


# ---- (b) compose and config.yml agree ---------------------------------------------------------


def test_index_volume_is_where_config_keeps_indexes(deployment):
    compose, _, config = deployment
    index_dir = in_container(key(config, "index.path"))
    volumes = mounts(compose["services"]["app"])
    assert str(index_dir) in volumes, f"no volume at {index_dir}, the index path config.yml resolves to"
    source, read_only = volumes[str(index_dir)]
    assert source in (compose.get("volumes") or {}), f"{source} is not a named volume: indexes would not persist"
    assert not read_only


def test_documents_are_mounted_read_only_where_ingest_reads(deployment):
    compose, _, config = deployment
    volumes = mounts(compose["services"]["app"])
    sources = key(config, "ingest.sources")
    assert sources
    for item in sources:
        path = in_container(item["path"])
        mount = next((target for target in volumes if path.is_relative_to(PurePosixPath(target))), None)
        assert mount, f"ingest source {item['name']} ({path}) is not mounted into the app"
        assert volumes[mount] == ("./data", True)


def test_app_reads_the_mounted_config(deployment):
    compose, app_env, _ = deployment
    target = app_env["RAG_CONFIG"]
    assert mounts(compose["services"]["app"])[target] == ("./config.yml", True)


def test_app_reaches_the_ollama_service(deployment):
    compose, app_env, config = deployment
    services = compose["services"]
    url = urlsplit(key(config, "llm.ollama.base_url"))
    assert url.hostname in services, f"{url.hostname} is not a compose service"
    assert "ollama/ollama" in services[url.hostname]["image"]
    assert url.port == OLLAMA_PORT
    assert key(config, "llm.provider") == "ollama"

    pull = services["ollama-pull"]
    pulled = urlsplit(environment(pull)["OLLAMA_HOST"])
    assert (pulled.hostname, pulled.port) == (url.hostname, url.port), "the model is pulled into another server"
    assert environment(pull)["OLLAMA_MODEL"] == app_env["OLLAMA_MODEL"]

    depends = services["app"]["depends_on"]
    assert depends[url.hostname] == {"condition": "service_healthy"}
    assert depends["ollama-pull"] == {"condition": "service_completed_successfully"}
    assert services[url.hostname]["healthcheck"]["test"]
    assert mounts(services[url.hostname])["/root/.ollama"][0] in compose["volumes"]


def test_ollama_is_not_published_by_default(deployment):
    compose, _, _ = deployment
    for name, service in compose["services"].items():
        if not service.get("profiles"):
            assert OLLAMA_PORT not in [port for _, port in published(service)], f"{name} publishes Ollama"


def test_published_port_is_the_served_port(deployment):
    compose, _, config = deployment
    port = int(key(config, "api.port"))
    assert [container for _, container in published(compose["services"]["app"])] == [port]
    assert key(config, "api.host") in ("0.0.0.0", "::"), "the API must listen on all interfaces in the container"


def test_config_loads_with_the_container_environment(deployment):
    from rag.config import load_config

    _, app_env, _ = deployment
    load_config(CONFIG, environ=app_env)


# ---- the image --------------------------------------------------------------------------------


def test_image_runs_as_non_root_with_a_healthcheck(deployment):
    _, _, config = deployment
    stage = final_stage()
    users = [rest.split(":")[0] for word, rest in stage if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the app image must not run as root"
    checks = [rest for word, rest in stage if word == "HEALTHCHECK"]
    assert checks and "/health" in checks[-1]
    assert "RAG_PORT" in checks[-1] or str(key(config, "api.port")) in checks[-1]


def test_build_context_leaves_out_local_state_and_secrets():
    patterns = set(DOCKERIGNORE.read_text(encoding="utf-8").split())
    for required in (".git", ".venv", ".env", "indexes/*", "data", ".pytest_cache"):
        assert required in patterns, f".dockerignore does not exclude {required}"
