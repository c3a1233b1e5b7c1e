"""The deployable package (issue 14), validated without a container engine or a cluster.

The image definition is linted (hadolint), the compose file checked against the compose spec, both
kustomizations built with kustomize and every resource validated: the core API's kinds against
Kubernetes' own schemas (kubernetes-validate, strict), Strimzi's and CloudNativePG's custom resources
against their CRDs' schemas (vendored in deploy/kubernetes/crd-schemas/). Then what they say is held
to the project itself: every variable is a real setting and each process gets only its own logins,
every command parses with the CLI's parser, probes hit the routes and ports the services serve, the
Kafka users' ACLs are role_acls' and the database bootstrap runs `db harden`'s own statement.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.adapters.kafka import acl
from services.adapters.postgres.connect import LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE, ROLE_DSNS
from services.adapters.postgres.logins import DASHBOARDS_ROLE, HARDEN
from services.cli import build_parser
from services.observability import http_metrics
from services.observability.health_app import health_app
from services.settings import SECRET_FIELDS, TOPICS, Settings, load, variable

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy/container/Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_DIR = REPO / "deploy/compose"
KUSTOMIZATIONS = {
    "base": REPO / "deploy/kubernetes/base",
    "strimzi-cloudnativepg": REPO / "deploy/kubernetes/overlays/strimzi-cloudnativepg",
}
CRD_SCHEMAS = REPO / "deploy/kubernetes/crd-schemas"
BIN = REPO / ".venv/bin"
# The newest Kubernetes whose schemas kubernetes-validate 1.37.0 bundles (it has 1.12 to 1.37).
KUBERNETES_VERSION = "1.37.0"
# API groups of the operators' custom resources: no Kubernetes schema knows them; their CRDs' do.
CRD_GROUPS = {"kafka.strimzi.io", "postgresql.cnpg.io"}
IMAGE = "vote-ledger"

SETTING_VARIABLES = {variable(field) for field in Settings.model_fields}
SECRET_VARIABLES = {variable(field) for field in SECRET_FIELDS}
# Each command's logins, from the code: `services run X` checks role_dsn for its role (services_cmd.py);
# the ledger and /v1/status reach Kafka as the ledger role (topics.TOPIC_ROLES); `db migrate` runs as the
# owner (VOTE_LEDGER_PG_DSN), `db harden` as a superuser (VOTE_LEDGER_PG_ADMIN_DSN).
PG_LOGIN = {
    ("services", "run", "ledger"): ROLE_DSNS[LEDGER_ROLE][1],
    ("services", "run", "projector"): ROLE_DSNS[PROJECTOR_ROLE][1],
    ("services", "run", "api"): ROLE_DSNS[READER_ROLE][1],
    ("db", "migrate"): variable("pg_dsn"),
    ("db", "harden"): variable("pg_admin_dsn"),
}
KAFKA_LOGIN = {
    ("services", "run", "ledger"): variable("kafka_ledger_login"),
    ("services", "run", "api"): variable("kafka_ledger_login"),
}
# The port each long-running command serves /healthz and /readyz on, and the routes serving them.
PROBE_PORT_FIELD = {
    ("services", "run", "ledger"): "ledger_metrics_port",
    ("services", "run", "projector"): "projector_metrics_port",
    ("services", "run", "api"): "api_port",
}
LISTEN_HOST_FIELD = {
    ("services", "run", "ledger"): "metrics_host",
    ("services", "run", "projector"): "metrics_host",
    ("services", "run", "api"): "api_host",
}
REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def default(field: str):
    """A setting's default, as Settings declares it."""
    return Settings.model_fields[field].default


def served_paths(command: tuple[str, ...]) -> set[str]:
    """The GET paths the process of this command serves on its probe port."""
    if command == ("services", "run", "api"):
        return {route.path for route in http_metrics.router.routes}
    return {route.path for route in health_app(CollectorRegistry(), _never_called).routes}


async def _never_called():  # health_app only stores it: the route table is read, no request is made
    raise AssertionError("not called")


@functools.cache
def parser():
    """The project's CLI parser (built once: it imports every command module)."""
    return build_parser()


def parsed(argv: list[str]) -> tuple[str, ...]:
    """The argv parsed by the project's own CLI parser, as the command tuple the tables above use."""
    try:
        args = parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`vote-ledger {' '.join(argv)}` does not parse with services.cli's parser")
    if args.command == "services":
        return ("services", args.services_command, args.which)
    action = next(
        getattr(args, f"{args.command}{suffix}")
        for suffix in ("_command", "_action")
        if hasattr(args, f"{args.command}{suffix}")
    )
    return (args.command, action)


# --- the image ---------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def test_the_dockerfile_passes_hadolint_at_every_level_with_no_ignore_but_commented_ones(tmp_path):
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")  # no global ignore, whatever a user's own config says
    run = subprocess.run(
        [BIN / "hadolint", "--no-color", "--format", "json", "--failure-threshold", "style", "--config", config]
        + [DOCKERFILE],
        capture_output=True,
        text=True,
    )
    assert json.loads(run.stdout or "[]") == [], run.stdout
    assert run.returncode == 0, run.stderr
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before, f"line {number + 1}: say why it is ignored"


def test_the_image_runs_vote_ledger_as_a_fixed_non_root_user_and_its_default_command_parses():
    instructions = dockerfile_instructions()
    entrypoint = [json.loads(args) for word, args in instructions if word == "ENTRYPOINT"]
    command = [json.loads(args) for word, args in instructions if word == "CMD"]
    assert entrypoint[-1] == ["vote-ledger"]  # exec form: no shell between the runtime and the process
    assert parsed(command[-1]) == ("services", "run", "all")
    user = [args for word, args in instructions if word == "USER"][-1]
    assert user == "10001:10001"
    assert not any(word == "HEALTHCHECK" for word, _ in instructions)
    froms = [args for word, args in instructions if word == "FROM"]
    assert len(froms) == 2, "a build stage and a runtime stage"
    # The runtime stage installs the build stage's wheels from a bind mount: no copy of them stays in a layer.
    assert any("--mount=type=bind,from=build" in args for word, args in instructions if word == "RUN")


def test_the_build_context_admits_what_the_wheel_is_made_of_and_nothing_else():
    rules = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"]
    assert rules[0] == "*", "an allowlist: the local stack's password files must never reach a builder"
    admitted = [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]
    copied = []
    for word, args in dockerfile_instructions():
        if word == "COPY" and "--from" not in args:
            *sources, _ = args.split()
            copied += [source.rstrip("/") for source in sources]
    for source in copied:
        assert any(source == a or source.startswith(a + "/") for a in admitted), f"{source} is not in the context"
    # What pyproject builds the wheel from: the readme, the packages and their package data.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["readme"] in copied and "pyproject.toml" in copied
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        assert any(c == package or c.startswith(package + "/") for c in copied), f"package {package} not copied"
    for package, patterns in project["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            folder = str(Path(package, pattern).parent)
            assert any(folder == c or folder.startswith(c + "/") for c in copied), f"{package}: {pattern} not copied"


# --- compose ----------------------------------------------------------------------------------------


@functools.cache
def compose() -> dict:
    """The compose file, YAML anchors and merge keys resolved."""
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())


def our_services() -> dict[str, dict]:
    """The compose services that run vote-ledger's image."""
    return {name: s for name, s in compose()["services"].items() if s.get("image", "").split(":")[0] == IMAGE}


def interpolated(value: str, env: dict[str, str]) -> str:
    """A compose value with ${VAR:?message} and ${VAR} replaced from env (an unset one fails the test)."""

    def one(match: re.Match) -> str:
        name = match.group(1)
        assert name in env, f"${{{name}}} is not defined in deploy/compose/example.env"
        return env[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[?-][^}]*)?\}", one, value)


def example_env() -> dict[str, str]:
    lines = (COMPOSE_DIR / "example.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_compose_file_validates_against_the_compose_spec():
    run = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE_DIR / "compose.yaml"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_compose_runs_the_migration_then_ledger_projector_and_api_each_with_only_its_own_login():
    services = our_services()
    commands = {name: parsed(service["command"]) for name, service in services.items()}
    assert sorted(commands.values()) == sorted(PG_LOGIN)  # ledger, projector, api, db migrate, db harden
    env = example_env()
    for name, service in services.items():
        variables = {key: interpolated(str(value), env) for key, value in service["environment"].items()}
        assert set(variables) <= SETTING_VARIABLES, f"{name}: not a setting: {set(variables) - SETTING_VARIABLES}"
        # Kafka here is PLAINTEXT: no Kafka login at all; the one PostgreSQL login of the command.
        assert {v for v in variables if v in SECRET_VARIABLES} == {PG_LOGIN[commands[name]]}, name
        load(**{_field(v): value for v, value in variables.items()})  # every value well formed
    depends = {name: services[name]["depends_on"] for name in services}
    assert depends["migrate"]["harden"]["condition"] == "service_completed_successfully"
    for name in ("ledger", "projector", "api"):
        assert depends[name]["migrate"]["condition"] == "service_completed_successfully"
    assert depends["ledger"]["kafka"]["condition"] == "service_healthy"
    assert depends["harden"]["postgres"]["condition"] == "service_healthy"


def _field(name: str) -> str:
    return next(field for field in Settings.model_fields if variable(field) == name)


def test_compose_healthchecks_ask_readyz_on_the_port_each_service_listens_on():
    for name, service in our_services().items():
        command = parsed(service["command"])
        if command not in PROBE_PORT_FIELD:
            assert "healthcheck" not in service, f"{name} is a one-shot job"
            continue
        variables = service["environment"]
        port_field, host_field = PROBE_PORT_FIELD[command], LISTEN_HOST_FIELD[command]
        port = int(variables.get(variable(port_field), default(port_field)))
        assert port == default(port_field)
        assert variables[variable(host_field)] == "0.0.0.0", f"{name} must listen beyond its loopback"
        url = re.search(r"http://[^'\"]+", " ".join(service["healthcheck"]["test"])).group(0)
        parts = urlsplit(url)
        assert (parts.port, parts.path) == (port, "/readyz") and parts.path in served_paths(command), name


def test_compose_postgres_makes_the_logins_the_dsns_use_in_the_group_roles_the_code_grants_to():
    script = (COMPOSE_DIR / "postgres-init.sh").read_text()
    env = example_env()
    groups = {LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE, DASHBOARDS_ROLE}
    for group in groups:
        assert f"CREATE ROLE {group} NOLOGIN;" in script
    role_of = {
        ("services", "run", "ledger"): LEDGER_ROLE,
        ("services", "run", "projector"): PROJECTOR_ROLE,
        ("services", "run", "api"): READER_ROLE,
    }
    for service in our_services().values():
        command = parsed(service["command"])
        dsn = interpolated(service["environment"][PG_LOGIN[command]], env)
        login = urlsplit(dsn).username
        if command in role_of:
            assert re.search(rf"CREATE ROLE {login} LOGIN PASSWORD :'\w+' IN ROLE {role_of[command]};", script)
        elif command == ("db", "migrate"):
            assert re.search(rf'ALTER DATABASE :"db" OWNER TO {login};', script)
    secrets = set(compose()["secrets"])
    assert set(re.findall(r"secret (pg_\w+)", script)) <= set(compose()["services"]["postgres"]["secrets"]) <= secrets
    assert {s["environment"] for s in compose()["secrets"].values()} <= set(env)


# --- Kubernetes -------------------------------------------------------------------------------------


def kustomize() -> str:
    """The kustomize binary `make deploy-tools` builds, else one on the PATH; missing fails (never skips)."""
    built = REPO / ".cache/go/bin/kustomize"
    found = str(built) if built.exists() else shutil.which("kustomize")
    if found is None:
        pytest.fail("kustomize is missing: run `make deploy-tools` (it builds .cache/go/bin/kustomize)")
    return found


@functools.cache
def built(name: str) -> tuple[dict, ...]:
    """The resources `kustomize build` makes of a kustomization."""
    run = subprocess.run([kustomize(), "build", KUSTOMIZATIONS[name]], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return tuple(doc for doc in yaml.safe_load_all(run.stdout) if doc)


def of_kind(name: str, kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in built(name) if doc["kind"] == kind}


def workloads(name: str) -> dict[str, dict]:
    """Deployments and Jobs by name."""
    return of_kind(name, "Deployment") | of_kind(name, "Job")


def container(workload: dict) -> dict:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def config(name: str) -> dict[str, str]:
    (configmap,) = of_kind(name, "ConfigMap").values()
    return configmap["data"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_kustomization_builds_and_every_core_resource_validates_strictly(name):
    docs = built(name)
    assert {"Deployment", "Job", "Service", "ConfigMap", "PodDisruptionBudget"} <= {d["kind"] for d in docs}
    core = [doc for doc in docs if doc["apiVersion"].split("/")[0] not in CRD_GROUPS]
    for doc in core:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {getattr(exc, 'message', exc)}")
    assert not [doc for doc in docs if doc["kind"] == "Secret"], "no secret values in the package"


def crd_validator(doc: dict) -> jsonschema.Validator:
    """The CRD's schema for the resource; unknown fields refused, as the API server's strict field validation does."""
    group, version = doc["apiVersion"].split("/")
    path = CRD_SCHEMAS / f"{doc['kind'].lower()}-{group}-{version}.json"
    assert path.exists(), f"no vendored schema for {doc['kind']} {doc['apiVersion']}"

    def strict(node):
        if isinstance(node, dict):
            node = {key: strict(value) for key, value in node.items()}
            if "properties" in node and "additionalProperties" not in node:
                if not node.get("x-kubernetes-preserve-unknown-fields"):
                    node["additionalProperties"] = False
        elif isinstance(node, list):
            node = [strict(value) for value in node]
        return node

    return jsonschema.Draft7Validator(strict(json.loads(path.read_text())))


def test_the_strimzi_and_cloudnativepg_resources_validate_against_their_crds_schemas():
    custom = [doc for doc in built("strimzi-cloudnativepg") if doc["apiVersion"].split("/")[0] in CRD_GROUPS]
    assert sorted({doc["kind"] for doc in custom}) == ["Cluster", "KafkaTopic", "KafkaUser"]
    for doc in custom:
        assert doc["metadata"]["name"] and doc.get("spec"), doc
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in crd_validator(doc).iter_errors(doc)]
        assert not errors, f"{doc['kind']} {doc['metadata']['name']}: {errors}"


def test_the_crd_schema_check_refuses_an_unknown_field_and_a_wrong_type():
    topic = next(iter(of_kind("strimzi-cloudnativepg", "KafkaTopic").values()))
    unknown = {**topic, "spec": {**topic["spec"], "replication": 3}}
    wrong = {**topic, "spec": {**topic["spec"], "partitions": "four"}}
    assert not crd_validator(topic).is_valid(unknown) and not crd_validator(topic).is_valid(wrong)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_workload_runs_a_real_command_with_real_settings_and_only_its_own_logins(name):
    settings = config(name)
    assert set(settings) <= SETTING_VARIABLES, set(settings) - SETTING_VARIABLES
    load(**{_field(key): value for key, value in settings.items()})  # every value well formed
    commands = []
    for workload_name, workload in workloads(name).items():
        box = container(workload)
        assert "command" not in box, "the image's entrypoint (vote-ledger) runs the args"
        command = parsed(box["args"])
        commands.append(command)
        env = box.get("env", [])
        names = [entry["name"] for entry in env]
        assert len(names) == len(set(names)), workload_name
        settings_set = [n for n in names if n.startswith("VOTE_LEDGER_")]
        assert set(settings_set) <= SETTING_VARIABLES, f"{workload_name}: {set(settings_set) - SETTING_VARIABLES}"
        # Helpers (VL_*) only carry a secret's part into a later setting through $(NAME); nothing else.
        for position, entry in enumerate(env):
            for referenced in REFERENCE.findall(entry.get("value", "")):
                assert referenced in names[:position], f"{workload_name}: $({referenced}) is not defined before"
            if not entry["name"].startswith("VOTE_LEDGER_"):
                assert entry["name"].startswith("VL_"), entry["name"]
                used = [e for e in env[position:] if f"$({entry['name']})" in e.get("value", "")]
                assert used, f"{workload_name}: {entry['name']} is set but used by no setting"
        logins = {n for n in settings_set if n in SECRET_VARIABLES}
        wanted = {PG_LOGIN[command]} | ({KAFKA_LOGIN[command]} if command in KAFKA_LOGIN else set())
        assert logins == wanted, f"{workload_name} gets {logins}, needs exactly {wanted}"
        assert not set(settings) & SECRET_VARIABLES, "no login in the ConfigMap"
    assert sorted(commands) == sorted(c for c in PG_LOGIN if c != ("db", "harden"))


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_probes_hit_healthz_and_readyz_on_the_port_each_service_listens_on(name):
    settings = config(name)
    for workload_name, workload in of_kind(name, "Deployment").items():
        box = container(workload)
        command = parsed(box["args"])
        port_field, host_field = PROBE_PORT_FIELD[command], LISTEN_HOST_FIELD[command]
        port = int(settings[variable(port_field)])
        assert port == default(port_field), f"{variable(port_field)} differs from the setting's default"
        assert settings[variable(host_field)] == "0.0.0.0", f"{workload_name} must listen beyond its loopback"
        ports = {p["name"]: p["containerPort"] for p in box["ports"]}
        served = served_paths(command)
        expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
        for probe, path in expected.items():
            if probe not in box:
                assert probe == "startupProbe", f"{workload_name} has no {probe}"
                continue
            get = box[probe]["httpGet"]
            assert get["path"] == path and path in served, f"{workload_name} {probe}"
            assert ports.get(get["port"], get["port"]) == port, f"{workload_name} {probe} port"
    for service_name, service in of_kind(name, "Service").items():
        selected = [w for w in of_kind(name, "Deployment").values() if _selects(service["spec"]["selector"], w)]
        assert len(selected) == 1, service_name
        ports = {p["name"]: p["containerPort"] for p in container(selected[0])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports and port["port"] == ports[port["targetPort"]], service_name


def _selects(selector: dict, workload: dict) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_pods_run_as_the_image_s_user_read_only_without_capabilities_with_resources_and_budgets(name):
    uid, gid = (int(part) for part in [a for w, a in dockerfile_instructions() if w == "USER"][-1].split(":"))
    for workload_name, workload in workloads(name).items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, workload_name
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
        assert pod["automountServiceAccountToken"] is False
        box = container(workload)
        context = box["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert box["resources"]["requests"] and box["resources"]["limits"]["memory"], workload_name
    budgets = of_kind(name, "PodDisruptionBudget").values()
    for workload_name, workload in of_kind(name, "Deployment").items():
        assert workload["spec"]["replicas"] == 2, workload_name
        covering = [b for b in budgets if _selects(b["spec"]["selector"]["matchLabels"], workload)]
        assert len(covering) == 1 and covering[0]["spec"]["minAvailable"] == 1, workload_name


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_each_ledger_pod_is_its_own_static_member_named_after_the_pod(name):
    ledgers = [w for w in of_kind(name, "Deployment").values() if parsed(container(w)["args"])[-1] == "ledger"]
    (ledger,) = ledgers
    env = {entry["name"]: entry for entry in container(ledger)["env"]}
    assert env[variable("instance_id")]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_topics_are_replicated_three_times_with_two_in_sync_on_a_cluster():
    settings = config("base")
    assert settings[variable("topic_replication")] == "3" and settings[variable("topic_min_insync")] == "2"


# --- the Strimzi and CloudNativePG overlay -----------------------------------------------------------


def overlay_settings() -> Settings:
    """The overlay's settings as the processes read them (no topic prefix in production)."""
    values = {_field(key): value for key, value in config("strimzi-cloudnativepg").items()}
    return load(**values, topic_prefix="", consumer_group=default("consumer_group"))


def test_strimzi_topics_are_the_ones_the_ledger_would_create_with_the_same_configuration():
    cfg = overlay_settings()
    topics = {t["spec"]["topicName"]: t for t in of_kind("strimzi-cloudnativepg", "KafkaTopic").values()}
    assert set(topics) == set(TOPICS)
    # services/adapters/kafka/topics.py ensure_topics: partitions, the broker's clock, retention.
    partitions = {cfg.submissions_topic: cfg.submission_partitions, cfg.decisions_topic: cfg.submission_partitions}
    broker_clock = {cfg.submissions_topic, cfg.admin_topic}
    kept_forever = {cfg.decisions_topic, cfg.heads_topic}
    for name, topic in topics.items():
        spec = topic["spec"]
        assert spec["partitions"] == partitions.get(name, 1), name
        assert spec["replicas"] == cfg.topic_replication, name
        assert spec["config"]["min.insync.replicas"] == cfg.topic_min_insync, name
        assert (spec["config"].get("message.timestamp.type") == "LogAppendTime") == (name in broker_clock), name
        assert (spec["config"].get("retention.ms") == -1) == (name in kept_forever), name
    bootstrap = cfg.kafka_bootstrap.split(":")[0]
    clusters = {t["metadata"]["labels"]["strimzi.io/cluster"] for t in topics.values()}
    assert clusters == {bootstrap.removesuffix("-kafka-bootstrap")}


STRIMZI_OPERATION = {
    acl.READ: "Read",
    acl.WRITE: "Write",
    acl.CREATE: "Create",
    acl.DESCRIBE: "Describe",
    acl.DESCRIBE_CONFIGS: "DescribeConfigs",
    acl.IDEMPOTENT_WRITE: "IdempotentWrite",
}
STRIMZI_RESOURCE = {
    acl.TOPIC: "topic",
    acl.GROUP: "group",
    acl.CLUSTER: "cluster",
    acl.TRANSACTIONAL_ID: "transactionalId",
}


def strimzi_acls(user: dict) -> set[tuple]:
    """(resource type, name, pattern, operation) of each permission a KafkaUser grants."""
    out = set()
    for entry in user["spec"]["authorization"]["acls"]:
        resource = entry["resource"]
        assert entry.get("type", "allow") == "allow" and entry.get("host", "*") == "*"
        for operation in entry["operations"]:
            name = resource.get("name") if resource["type"] != "cluster" else None
            out.add((resource["type"], name, resource.get("patternType", "literal"), operation))
    return out


def role_acls_as_strimzi(cfg: Settings, role: str, user: str) -> set[tuple]:
    out = set()
    for permission in acl.role_acls(cfg, role, user):
        kind = STRIMZI_RESOURCE[permission.resource_type]
        name = None if kind == "cluster" else permission.name
        pattern = "prefix" if permission.pattern == acl.PREFIXED else "literal"
        out.add((kind, name, pattern, STRIMZI_OPERATION[permission.operation]))
    return out


def test_strimzi_users_hold_exactly_their_roles_acls_and_the_status_user_only_describes():
    cfg = overlay_settings()
    users = of_kind("strimzi-cloudnativepg", "KafkaUser")
    for user in users.values():
        assert user["spec"]["authentication"]["type"] == cfg.kafka_sasl_mechanism.lower()
    assert strimzi_acls(users["vote-ledger-ledger"]) == role_acls_as_strimzi(cfg, "ledger", "vote-ledger-ledger")
    assert strimzi_acls(users["vote-ledger-admin"]) == role_acls_as_strimzi(cfg, "admin", "vote-ledger-admin")
    status = strimzi_acls(users["vote-ledger-status"])
    assert {operation for *_, operation in status} == {"Describe", "DescribeConfigs"}
    assert {name for _, name, _, _ in status} == {cfg.submissions_topic, cfg.admin_topic}


def expanded(value: str, values: dict[str, str]) -> str:
    """A value with each $(NAME) replaced as the kubelet does, from the variables defined before it."""
    return REFERENCE.sub(lambda match: values[match.group(1)], value)


def test_the_overlay_composes_each_login_from_the_secrets_the_operators_make():
    users = of_kind("strimzi-cloudnativepg", "KafkaUser")
    (cluster,) = of_kind("strimzi-cloudnativepg", "Cluster").values()
    roles = {role["passwordSecret"]["name"]: role for role in cluster["spec"]["managed"]["roles"]}
    cluster_name = cluster["metadata"]["name"]
    for workload_name, workload in workloads("strimzi-cloudnativepg").items():
        env = container(workload)["env"]
        values: dict[str, str] = {}
        for entry in env:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref is None:
                continue
            if ref["name"] in users:  # Strimzi's Secret of a KafkaUser holds its password
                assert ref["key"] == "password"
                values[entry["name"]] = "kafka-password"
            elif ref["name"] in roles:  # the basic-auth Secret of a CloudNativePG managed role
                assert ref["key"] in ("username", "password")
                values[entry["name"]] = roles[ref["name"]]["name"] if ref["key"] == "username" else "pg-password"
            else:  # the owner's: the Secret CloudNativePG makes for the bootstrap database's owner
                assert (ref["name"], ref["key"]) == (f"{cluster_name}-app", "uri"), workload_name
                values[entry["name"]] = f"postgresql://vl_owner:pw@{cluster_name}-rw.ns:5432/vote_ledger"
        composed = {e["name"]: expanded(e["value"], values) for e in env if "value" in e}
        composed |= {name: value for name, value in values.items() if name.startswith("VOTE_LEDGER_")}
        settings = load(**{_field(name): value for name, value in composed.items()})
        for name, value in composed.items():
            if name.endswith("_DSN"):
                parts = urlsplit(value)
                assert parts.hostname.split(".")[0] == f"{cluster_name}-rw" and parts.path == "/vote_ledger", name
            if name.endswith("_LOGIN"):
                assert value.split(":")[0] in users, f"{workload_name}: {name} names no KafkaUser"
        assert settings is not None


def test_cloudnativepg_bootstraps_the_group_roles_and_runs_db_hardens_own_statement():
    (cluster,) = of_kind("strimzi-cloudnativepg", "Cluster").values()
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    first, second = initdb["postInitApplicationSQL"]
    for group in (LEDGER_ROLE, PROJECTOR_ROLE, READER_ROLE, DASHBOARDS_ROLE):
        assert f"CREATE ROLE {group} NOLOGIN;" in first
    assert second.strip() == HARDEN.strip(), "the harden statement drifted from services/adapters/postgres/logins.py"
    memberships = {role["name"]: role["inRoles"] for role in cluster["spec"]["managed"]["roles"]}
    assert memberships == {"vl_ledger": [LEDGER_ROLE], "vl_projector": [PROJECTOR_ROLE], "vl_reader": [READER_ROLE]}
    assert initdb["owner"] == "vl_owner" and cluster["spec"]["enableSuperuserAccess"] is False
    assert cluster["spec"]["postgresql"]["synchronous"]["number"] >= 1


def test_the_readme_deploy_section_runs_real_commands_of_the_image():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("\n## Deploy\n") :]
    section = section[: section.index("\n## ", 1)]
    runs = re.findall(r"docker run --rm vote-ledger:\S+ ([^#\n]+)", section)
    runs += re.findall(r"compose\.yaml run --rm migrate ([^#\n]+)", section)
    assert len(runs) >= 2
    for argv in runs:
        parsed(argv.split())
    assert f"vote-ledger:{tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['version']}" in section
