"""Docker Compose deployment: valid for every variant, and in agreement with config.yml.

No Docker engine is needed: `docker-compose config` validates and resolves the compose files,
and the agreement checks read docker-compose.yml, config.yml and the Dockerfile as the
containers will see them (the values of .env.example, as after `cp .env.example .env`).
The scaled-out setup (docker/compose.postgres.yml over docker-compose.yml: PostgreSQL, a
one-shot migration, API replicas behind nginx) is read the same way, nginx.conf included.
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
POSTGRES_OVERRIDE = ROOT / "docker" / "compose.postgres.yml"
NGINX_CONF = ROOT / "docker" / "nginx.conf"
CONFIG = ROOT / "config.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"

APP_DIR = PurePosixPath("/app")  # WORKDIR of the image; config.yml's relative paths resolve here
OLLAMA_PORT = 11434  # what ollama/ollama serves on
POSTGRES_PORT = 5432  # what pgvector/pgvector serves on
POSTGRES_PASSWORD = "from-dot-env"  # stands in for the POSTGRES_PASSWORD a user puts in .env
COMPOSE_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\})")


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


class MissingVariable(ValueError):
    """A ${VAR:?message} whose VAR is unset: compose stops with the message."""


def compose_interpolate(value, env: dict):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and $$ in every string of a YAML tree."""
    if isinstance(value, dict):
        return {key: compose_interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [compose_interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match):
        name, colon, kind, default = match.groups()
        if name is None:
            return "$"
        if kind is None:
            return env.get(name, "")
        unset = name not in env or (colon and env[name] == "")
        if unset and kind == "?":
            raise MissingVariable(f"{name}: {default}")
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
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
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
    "postgres": ["-f", str(COMPOSE), "-f", str(POSTGRES_OVERRIDE)],
    "gpu-postgres": ["-f", str(COMPOSE), "-f", str(GPU_OVERRIDE), "-f", str(POSTGRES_OVERRIDE)],
}


def compose_config(files: list[str], **env) -> subprocess.CompletedProcess:
    """`docker-compose config` over files with .env.example as .env (and env, as a user's .env adds)."""
    command = compose_command()
    if command is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return subprocess.run(
        [*command, "--env-file", str(ENV_EXAMPLE), *files, "config"],
        cwd=ROOT,
        # only .env.example decides (standing in for .env), not the caller's COMPOSE_* or RAG_*
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "RAG_ENV_FILE": str(ENV_EXAMPLE), **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_compose_config_is_valid(variant):
    result = compose_config(VARIANTS[variant], POSTGRES_PASSWORD=POSTGRES_PASSWORD)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"app", "ollama", "ollama-pull"} <= set(services)
    if "gpu" in variant:
        devices = services["ollama"]["deploy"]["resources"]["reservations"]["devices"]
        assert any(device.get("driver") == "nvidia" and "gpu" in device["capabilities"] for device in devices)
    if variant == "profile-expose-ollama":
        assert any(port == OLLAMA_PORT for service in services.values() for _, port in published(service))
    if "postgres" in variant:
        assert {"postgres", "migrate", "api", "proxy"} <= set(services)
        assert services["app"]["profiles"] == ["single"], "the single-process app would take the proxy's port"
        assert int(services["api"]["deploy"]["replicas"]) >= 2
        assert services["api"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_postgres_setup_stops_without_a_password():
    result = compose_config(VARIANTS["postgres"])
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


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


# ---- (c) scaled out: docker/compose.postgres.yml over docker-compose.yml ----------------------


def merge(base, override):
    """Compose's merge of an override file, as far as these files need it: mappings merge key by
    key, lists add the items they lack (profiles, volumes), scalars are replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: merge(base[key], value) if key in base else value for key, value in override.items()}}
    if isinstance(base, list) and isinstance(override, list):
        return base + [item for item in override if item not in base]
    return override


def active(compose: dict) -> dict:
    """The services `up` starts without --profile."""
    return {name: service for name, service in compose["services"].items() if not service.get("profiles")}


@pytest.fixture(scope="module")
def scaled():
    """The merged compose files, and the environment of `api` (a replica) as in its container."""
    dotenv = {**env_file(ENV_EXAMPLE), "POSTGRES_PASSWORD": POSTGRES_PASSWORD}
    base = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    override = {
        key: value
        for key, value in yaml.safe_load(POSTGRES_OVERRIDE.read_text(encoding="utf-8")).items()
        if not key.startswith("x-")  # anchors, already merged into the services by YAML
    }
    compose = compose_interpolate(merge(base, override), dotenv)
    api_env = {**image_env(), **dotenv, **environment(compose["services"]["api"])}
    return compose, api_env


def load_scaled_config(environ: dict):
    """config.yml loaded as a container of the scaled setup loads it."""
    from rag.config import load_config

    return load_config(CONFIG, environ=environ)


def test_postgres_keeps_its_data_in_a_volume_and_reports_health(scaled):
    compose, _ = scaled
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("pgvector/pgvector:pg"), "the official pgvector image"
    source, read_only = mounts(postgres)["/var/lib/postgresql/data"]
    assert source in compose["volumes"], "the database would be lost with its container"
    assert not read_only
    check = postgres["healthcheck"]["test"]
    assert "pg_isready" in check
    size = str(postgres.get("shm_size", "64m")).lower().rstrip("b")
    scale = {"k": 2**10, "m": 2**20, "g": 2**30}
    size = int(size[:-1]) * scale[size[-1]] if size[-1] in scale else int(size)
    assert size >= 512 * 2**20, "a parallel HNSW build (maintenance_work_mem 512MB) needs shared memory; Docker gives 64 MB"
    pg_env = environment(postgres)
    assert f"--username={pg_env['POSTGRES_USER']}" in check and f"--dbname={pg_env['POSTGRES_DB']}" in check
    assert not published(postgres), "the database is reached over the compose network only"


def test_password_is_required_not_defaulted():
    text = POSTGRES_OVERRIDE.read_text(encoding="utf-8")
    assert "${POSTGRES_PASSWORD:?" in text and "${POSTGRES_PASSWORD:-" not in text
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        compose_interpolate(yaml.safe_load(text), env_file(ENV_EXAMPLE))


def test_replicas_and_migration_use_the_postgres_service(scaled):
    compose, _ = scaled
    services = compose["services"]
    pg_env = environment(services["postgres"])
    for name in ("api", "migrate"):
        service_env = {**image_env(), **env_file(ENV_EXAMPLE), **environment(services[name])}
        assert service_env["RAG_INDEX_STORE"] == "postgres"
        url = urlsplit(service_env["DATABASE_URL"])
        assert url.scheme in ("postgresql", "postgres")
        assert (url.hostname, url.port) == ("postgres", POSTGRES_PORT), f"{name} connects elsewhere"
        assert (url.username, url.password) == (pg_env["POSTGRES_USER"], POSTGRES_PASSWORD)
        assert url.path == f"/{pg_env['POSTGRES_DB']}"
        index = load_scaled_config(service_env).index
        assert index.store == "postgres" and index.postgres.url == service_env["DATABASE_URL"]


def test_migration_runs_once_before_the_replicas(scaled):
    compose, _ = scaled
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["rag", "migrate"]
    assert migrate["restart"] == "no", "a one-shot job; restarting it would keep the replicas waiting"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    depends = services["api"]["depends_on"]
    assert depends["migrate"] == {"condition": "service_completed_successfully"}
    assert depends["postgres"] == {"condition": "service_healthy"}
    assert migrate["image"] == services["api"]["image"], "the schema must be the one the replicas expect"


def test_replicas_are_the_app_over_shared_volumes(scaled, deployment):
    compose, api_env = scaled
    app, api = deployment[0]["services"]["app"], compose["services"]["api"]
    assert int(api["deploy"]["replicas"]) >= 2
    assert api["command"] == ["rag", "serve"]
    assert api["image"] == app["image"] and api.get("build") == app.get("build")
    assert mounts(api) == mounts(app), "the replicas must see the config, documents and indexes the app sees"
    assert api["depends_on"]["ollama"] == app["depends_on"]["ollama"]
    assert api["depends_on"]["ollama-pull"] == app["depends_on"]["ollama-pull"]
    app_env = environment(app)
    differ = {name for name in app_env if environment(api).get(name) != app_env[name]}
    assert differ <= {"RAG_PORT"}, f"api and app disagree on {sorted(differ)}"

    # uploads (ingested by the replica that receives them) and the vector cache are in one named
    # volume that every replica mounts; a per-container folder would hide them from the others
    config = load_scaled_config(api_env)
    volumes = mounts(api)
    for path in (in_container(config.ingest.uploads), in_container(config.index.path) / config.index.name / "vectors"):
        mount = max((target for target in volumes if path.is_relative_to(PurePosixPath(target))), key=len)
        source, read_only = volumes[mount]
        assert source in compose["volumes"] and not read_only, f"{path} is not on a shared, writable volume"


def test_proxy_takes_the_port_the_single_app_published(scaled, deployment):
    compose, _ = scaled
    services = active(compose)
    assert "app" not in services, "the single-process app would still start and hold the port"
    assert {"postgres", "migrate", "api", "proxy", "ollama", "ollama-pull"} <= set(services)
    replicated = [name for name, service in services.items() if int((service.get("deploy") or {}).get("replicas", 1)) > 1]
    for name in replicated:
        assert not published(services[name]), f"{name} has replicas: they cannot all publish one host port"
    single = [host for host, _ in published(deployment[0]["services"]["app"])]
    assert [host for host, _ in published(services["proxy"])] == single
    hosts = [host for service in services.values() for host, _ in published(service)]
    assert len(hosts) == len(set(hosts)), "two services publish the same host port"
    assert services["proxy"]["depends_on"]["api"] == {"condition": "service_healthy"}


# nginx.conf as a tree: (directive, arguments, children) -------------------------------------------


def nginx_tree(text: str) -> list:
    """nginx.conf parsed into [(name, [args], [children])], comments dropped."""
    tokens = re.findall(r'"[^"]*"|[{};]|[^\s{};]+', re.sub(r"#[^\n]*", "", text))
    stack, words = [[]], []
    for token in tokens:
        if token == ";":
            stack[-1].append((words[0], words[1:], []))
            words = []
        elif token == "{":
            block = (words[0], words[1:], [])
            stack[-1].append(block)
            stack.append(block[2])
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token.strip('"'))
    assert len(stack) == 1 and not words, "unbalanced braces or a directive without ;"
    return stack[0]


def directives(tree: list, name: str) -> list:
    """Every directive called name, at any depth."""
    found = []
    for directive in tree:
        if directive[0] == name:
            found.append(directive)
        found.extend(directives(directive[2], name))
    return found


def nginx_size(value: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].lower() in units else int(value)


def nginx_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * units[unit or "s"]


def test_proxy_config_is_the_mounted_nginx_conf(scaled):
    compose, _ = scaled
    proxy = compose["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert mounts(proxy)["/etc/nginx/nginx.conf"] == ("./docker/nginx.conf", True)
    tree = nginx_tree(NGINX_CONF.read_text(encoding="utf-8"))
    listens = {int(args[0].rpartition(":")[2]) for _, args, _ in directives(tree, "listen")}
    assert [port for _, port in published(proxy)] == sorted(listens), "the published port is not the one nginx listens on"


def test_proxy_upstream_is_every_api_replica(scaled):
    compose, api_env = scaled
    tree = nginx_tree(NGINX_CONF.read_text(encoding="utf-8"))
    upstreams = {args[0]: children for _, args, children in directives(tree, "upstream")}
    passes = [args[0] for _, args, _ in directives(tree, "proxy_pass")]
    assert passes and all(urlsplit(target).hostname in upstreams for target in passes), "proxy_pass bypasses the upstream"
    port = int(load_scaled_config(api_env).api.port)
    for name, children in upstreams.items():
        servers = [args for directive, args, _ in children if directive == "server"]
        assert servers, f"upstream {name} has no server"
        for args in servers:
            host, _, server_port = args[0].rpartition(":")
            assert host == "api" and host in compose["services"], f"upstream {name} points at {args[0]}"
            assert int(server_port) == port, f"the replicas serve on {port}, not {server_port}"
            # `resolve` (with a zone and a resolver) follows replicas that come, go or change address
            assert "resolve" in args
        assert any(directive == "zone" for directive, _, _ in children)
    assert directives(tree, "resolver")[0][1][0] == "127.0.0.11", "Docker's embedded DNS"
    tag = compose["services"]["proxy"]["image"].partition(":")[2]
    version = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", tag)
    if version:  # `resolve` is in open-source nginx from 1.27.3: older versions refuse to start
        major, minor, patch = (int(part) if part else 99 for part in version.groups())
        assert (major, minor, patch) >= (1, 27, 3), f"{tag}: nginx before 1.27.3 rejects `resolve`"


def test_proxy_lets_uploads_and_slow_answers_through(scaled):
    from api.routers.documents import MAX_FILES

    _, api_env = scaled
    config = load_scaled_config(api_env)
    tree = nginx_tree(NGINX_CONF.read_text(encoding="utf-8"))
    body = nginx_size(directives(tree, "client_max_body_size")[0][1][0])
    assert body >= MAX_FILES * config.api.max_upload_size + config.api.max_body_size, "nginx would refuse uploads the app accepts"
    read = nginx_seconds(directives(tree, "proxy_read_timeout")[0][1][0])
    assert read > config.llm.ollama.timeout, "nginx would cut off an answer the app is still waiting for"
    assert directives(tree, "proxy_buffering")[0][1] == ["off"], "streamed answers would arrive in one piece"
