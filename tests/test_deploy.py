"""The deployment files, checked offline (no Docker engine or cluster here).

Kubernetes: every overlay of ``deploy/kubernetes/overlays``, and each size with each
component, is rendered with ``kubectl kustomize`` (kubectl comes with the machine's image;
.ci/run checks for it) and every object is validated: Kubernetes' own kinds against the
schemas ``kubernetes-validate`` ships, strictly (an unknown field fails), CloudNativePG's
and cert-manager's against ``tests/schemas/*.json`` (the fields the components use, and
no other). Then what the code says of the rendered objects: each process runs a module
that exists, listens where its probes and Service look, reads only settings its
Settings class knows and starts in production with them, takes its secrets from keys the
example Secret documents; each NetworkPolicy admits exactly the callers the services'
``*_address`` settings name. Compose: ``deploy/compose.yaml`` against the Compose
specification's schema (vendored in check-jsonschema) and the same rules. And the
plaintext health port the probes use, on a service that serves TLS.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import kubernetes_validate
import pydantic_settings
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from doudi.common.grpc_client import serving_status
from doudi.common.grpc_server import LIVENESS_SERVICE
from doudi.common.migrations import MigrationSettings
from gateway.console import vendor
from tests.services import ROOT, RunningService, free_port, running_service
from tests.tls_support import authority

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SCHEMAS = Path(__file__).parent / "schemas"
KUBERNETES_VERSION = "1.32"
"""The oldest Kubernetes the manifests are written for (native gRPC probes, autoscaling/v2,
policy/v1): the schemas they are validated against."""
NAMESPACE = "doudi"
SERVICES = ("enrollment", "datashare", "settlement", "assistance")
PROCESSES = {**{name: f"services.{name}" for name in SERVICES}, "gateway": "gateway"}
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir() if path.is_dir())
COMPONENTS = sorted(path.name for path in (KUBERNETES / "components").iterdir() if path.is_dir())
SIZES = ("county", "province")
VARIANTS = [
    *(f"overlays/{overlay}" for overlay in OVERLAYS),
    *(f"{size}+{component}" for size in SIZES for component in COMPONENTS),
    *(f"{size}+{'+'.join(COMPONENTS)}" for size in SIZES),
]
"""Every overlay as committed, and each size with each component and with all of them."""
CRD_SCHEMAS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster.json",
    ("postgresql.cnpg.io/v1", "Database"): "cnpg-database.json",
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): "cnpg-scheduledbackup.json",
    ("cert-manager.io/v1", "Certificate"): "certmanager-certificate.json",
    ("cert-manager.io/v1", "Issuer"): "certmanager-issuer.json",
}
CNPG_APP_SECRET_KEYS = frozenset({"username", "password", "dbname", "host", "port", "uri"})
"""Keys of the Secret <cluster>-app that CloudNativePG generates for a cluster's owner."""
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"

Object = dict[str, Any]


# --- rendering ---


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl is not on PATH: the Kubernetes manifests are rendered with "
            "`kubectl kustomize` (the machine's image has it; .ci/run checks for it)"
        )
    return found


@functools.cache
def render(variant: str) -> tuple[Object, ...]:
    """The objects of a variant: ``overlays/<name>``, or ``<size>+<component>[+...]``
    rendered from a kustomization made for it in a temporary folder."""
    if variant.startswith("overlays/"):
        return _kustomize(KUBERNETES / variant)
    size, *components = variant.split("+")
    with tempfile.TemporaryDirectory(prefix="doudi-kustomize-") as made:
        folder = Path(made)
        relative = os.path.relpath(KUBERNETES, folder)
        (folder / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "resources": [f"{relative}/overlays/{size}"],
                    "components": [f"{relative}/components/{name}" for name in components],
                }
            )
        )
        return _kustomize(folder)


def _kustomize(folder: Path) -> tuple[Object, ...]:
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert rendered.returncode == 0, rendered.stderr
    return tuple(document for document in yaml.safe_load_all(rendered.stdout) if document)


def of_kind(objects: tuple[Object, ...], kind: str) -> dict[str, Object]:
    return {item["metadata"]["name"]: item for item in objects if item["kind"] == kind}


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def main_container(deployment: Object) -> Object:
    (container,) = pod_spec(deployment)["containers"]
    return container


def config_maps(objects: tuple[Object, ...]) -> dict[str, dict[str, str]]:
    return {name: item.get("data", {}) for name, item in of_kind(objects, "ConfigMap").items()}


def environment(container: Object, objects: tuple[Object, ...]) -> dict[str, Any]:
    """A container's settings: its ConfigMaps' (envFrom, in order) then its own ``env``
    (a value, or the valueFrom reference)."""
    maps = config_maps(objects)
    settings: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        settings.update(maps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        settings[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return settings


def settings_class(name: str) -> type[pydantic_settings.BaseSettings]:
    module = "gateway.settings" if name == "gateway" else f"services.{name}.settings"
    found: type[pydantic_settings.BaseSettings] = importlib.import_module(module).Settings
    return found


def known_settings(settings: type[pydantic_settings.BaseSettings]) -> set[str]:
    return {f"DOUDI_{field.upper()}" for field in settings.model_fields}


def peers_of(name: str) -> set[str]:
    """The services a process calls: the ``<service>_address`` settings it reads."""
    return {
        field.removesuffix("_address")
        for field in settings_class(name).model_fields
        if field.endswith("_address") and field.removesuffix("_address") != name
    }


def callers_of(service: str) -> set[str]:
    return {name for name in PROCESSES if service in peers_of(name)}


def service_port(name: str) -> int:
    port: int = importlib.import_module(f"services.{name}.settings").DEFAULT_PORT
    return port


def migration_jobs(objects: tuple[Object, ...]) -> dict[str, Object]:
    """Each service's migration Job, by service."""
    jobs = {}
    for job in of_kind(objects, "Job").values():
        command = pod_spec(job)["containers"][0]["command"]
        jobs[command[2].removeprefix("services.")] = job
    return jobs


# --- every variant renders, and every object is valid ---


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_renders_into_one_namespace(variant: str) -> None:
    objects = render(variant)

    kinds = {item["kind"] for item in objects}
    assert {"Deployment", "Service", "Job", "NetworkPolicy", "Ingress"} <= kinds
    assert set(of_kind(objects, "Deployment")) == set(PROCESSES)
    for item in objects:
        if item["kind"] != "Namespace":
            assert item["metadata"].get("namespace") == NAMESPACE, (item["kind"], item["metadata"])
    names = [(item["kind"], item["metadata"]["name"]) for item in objects]
    assert len(names) == len(set(names))


@functools.cache
def crd_schema(file: str) -> Object:
    schema: Object = json.loads((SCHEMAS / file).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def validate(item: Object) -> None:
    """Raise if ``item`` is not a valid object of its kind (unknown fields included)."""
    crd = CRD_SCHEMAS.get((item["apiVersion"], item["kind"]))
    if crd is not None:
        jsonschema.validate(
            item, crd_schema(crd), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
    else:
        kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_is_valid_for_its_kind(variant: str) -> None:
    for item in render(variant):
        try:
            validate(item)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            pytest.fail(f"{variant}: {item['kind']} {item['metadata']['name']}: {error}")


def test_the_validation_refuses_a_mistyped_field() -> None:
    """What the validation above is worth: a field spelt wrong fails, in Kubernetes' own
    kinds and in the custom resources alike; a kind of no known schema fails too."""
    objects = render(f"province+{'+'.join(COMPONENTS)}")
    mistakes = []
    for kind, mistake in (
        ("Deployment", lambda spec: spec["template"]["spec"].update(restartPolicyy="Always")),
        ("NetworkPolicy", lambda spec: spec.update(podSelectors={})),
        ("Cluster", lambda spec: spec.update(instance=3)),
        ("Cluster", lambda spec: spec["backup"].update(retentionPolicy="30 days")),
        ("ScheduledBackup", lambda spec: spec.update(schedule="0 1 * * *")),
        ("Database", lambda spec: spec.update(ensure="exists")),
        ("Certificate", lambda spec: spec.update(dnsName=["x"])),
        ("Issuer", lambda spec: spec.update(acme={})),
    ):
        item = json.loads(json.dumps(next(o for o in objects if o["kind"] == kind)))
        mistake(item["spec"])
        mistakes.append(item)
    mistakes.append({"apiVersion": "example.org/v1", "kind": "Unknown", "metadata": {"name": "x"}})
    for item in mistakes:
        with pytest.raises(
            (
                jsonschema.ValidationError,
                kubernetes_validate.ValidationError,
                kubernetes_validate.SchemaNotFoundError,
            )
        ):
            validate(item)


# --- the base, statically ---


def test_the_base_lists_every_manifest_and_settings_file_it_has() -> None:
    base = KUBERNETES / "base"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {
        path.name for path in base.glob("*.yaml") if path.name != "kustomization.yaml"
    }
    listed = {env for generator in kustomization["configMapGenerator"] for env in generator["envs"]}
    assert listed == {f"config/{path.name}" for path in (base / "config").glob("*.env")}


def test_the_release_is_the_projects_version_and_names_the_migration_jobs() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    kustomization = yaml.safe_load((KUBERNETES / "base" / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "doudi", "newTag": version}]
    for variant in VARIANTS:
        objects = render(variant)
        jobs = migration_jobs(objects)
        assert set(jobs) == set(SERVICES), variant
        for service, job in jobs.items():
            image = pod_spec(job)["containers"][0]["image"]
            assert image.endswith(f":{version}"), (variant, image)
            assert job["metadata"]["name"] == f"{service}-migrate-{version}"
        for deployment in of_kind(objects, "Deployment").values():
            assert main_container(deployment)["image"].endswith(f":{version}")


# --- each process: its module, ports, probes, settings, secrets ---


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_process_runs_its_own_module(variant: str) -> None:
    objects = render(variant)
    for name, deployment in of_kind(objects, "Deployment").items():
        assert main_container(deployment)["command"] == ["python", "-m", PROCESSES[name]]
        assert importlib.util.find_spec(f"{PROCESSES[name]}.__main__") is not None
    for name in SERVICES:
        deployment = of_kind(objects, "Deployment")[name]
        (wait,) = pod_spec(deployment)["initContainers"]
        assert wait["command"][:5] == ["python", "-m", f"services.{name}", "migrate", "--wait"]
        assert wait["image"] == main_container(deployment)["image"]
        (migrate,) = pod_spec(migration_jobs(objects)[name])["containers"]
        assert migrate["command"] == ["python", "-m", f"services.{name}", "migrate"]
        assert migrate["image"] == main_container(deployment)["image"]


def test_every_process_listens_where_its_probes_and_service_look() -> None:
    objects = render("overlays/county")
    services = of_kind(objects, "Service")
    for name, deployment in of_kind(objects, "Deployment").items():
        container = main_container(deployment)
        settings = environment(container, objects)
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        own = "http" if name == "gateway" else "grpc"
        expected = {own: int(settings["DOUDI_PORT"]), "metrics": 9090}
        if name != "gateway":
            # The probes' own port: plaintext, the health check alone (DOUDI_HEALTH_PORT).
            expected["health"] = int(settings["DOUDI_HEALTH_PORT"])
            assert expected["grpc"] == service_port(name)
        assert ports == expected
        assert len(set(ports.values())) == len(ports)
        assert settings["DOUDI_METRICS_PORT"] == str(ports["metrics"])
        service = services[name]
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
            own: own,
            "metrics": "metrics",
        }
        readiness, liveness = container["readinessProbe"], container["livenessProbe"]
        if name == "gateway":
            assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
            assert liveness["httpGet"] == {"path": "/livez", "port": "http"}
        else:
            assert readiness["grpc"] == {"port": ports["health"]}
            assert liveness["grpc"] == {"port": ports["health"], "service": LIVENESS_SERVICE}


def test_the_gateways_readiness_is_settlement_alone() -> None:
    """A gateway leaves the load balancer only when the settlement service is down:
    /readyz, not /healthz (which any service down would fail)."""
    for variant in VARIANTS:
        gateway = main_container(of_kind(render(variant), "Deployment")["gateway"])
        assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_setting_is_one_the_process_reads(variant: str) -> None:
    objects = render(variant)
    jobs = migration_jobs(objects)
    for name, deployment in of_kind(objects, "Deployment").items():
        known = known_settings(settings_class(name))
        containers = [main_container(deployment), *pod_spec(deployment).get("initContainers", [])]
        if name in jobs:
            containers += pod_spec(jobs[name])["containers"]
        for container in containers:
            unknown = set(environment(container, objects)) - known
            assert not unknown, (variant, name, container["name"], unknown)
    for name in SERVICES:
        # What a migration reads, it reads as the service does.
        assert known_settings(MigrationSettings) <= known_settings(settings_class(name))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_process_starts_in_production_with_its_settings(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each process's Settings, read from the rendered settings with its secrets given,
    is valid with DOUDI_ENVIRONMENT=production: every peer address, secret and TLS file
    it must be told is there (a default would stop the start)."""
    objects = render(variant)
    certificate = tmp_path / "tls"
    certificate.mkdir()
    for name, deployment in of_kind(objects, "Deployment").items():
        settings = environment(main_container(deployment), objects)
        assert settings["DOUDI_ENVIRONMENT"] == "production"
        for key, value in list(settings.items()):
            if isinstance(value, dict):  # a secret
                settings[key] = "postgresql://x@db/x" if "DATABASE" in key else "s" * 40
            elif key.startswith("DOUDI_TLS_") and key.endswith("_FILE"):
                path = certificate / Path(value).name
                path.touch()
                settings[key] = str(path)
        for key in list(os.environ):
            if key.startswith("DOUDI_"):
                monkeypatch.delenv(key)
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        read = settings_class(name)()
        assert read.environment == "production"
        assert read.model_fields_set >= {field.removeprefix("DOUDI_").lower() for field in settings}
        for peer in peers_of(name):
            assert getattr(read, f"{peer}_address") == f"dns:///{peer}:{service_port(peer)}"
        if name in SERVICES:
            assert read.migrate_on_start is False  # type: ignore[attr-defined]
            assert read.health_port is not None  # type: ignore[attr-defined]
            assert read.tls_client_auth == "require"  # type: ignore[attr-defined]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_secret_a_process_reads_is_documented_or_made(variant: str) -> None:
    """doudi-secrets' keys are in the example Secret; a CloudNativePG cluster's Secret is
    the operator's, for a cluster the variant makes; every TLS Secret a pod mounts is one
    cert-manager makes here, or one deploy/README.md says to create."""
    objects = render(variant)
    example = {
        item["metadata"]["name"]: set(item["stringData"])
        for item in yaml.safe_load_all((KUBERNETES / "secrets.example.yaml").read_text())
    }
    clusters = set(of_kind(objects, "Cluster"))
    made = {item["spec"]["secretName"] for item in of_kind(objects, "Certificate").values()}
    readme = (DEPLOY / "README.md").read_text()
    references: list[tuple[str, str]] = []
    for workload in [*of_kind(objects, "Deployment").values(), *of_kind(objects, "Job").values()]:
        spec = pod_spec(workload)
        for container in [*spec["containers"], *spec.get("initContainers", [])]:
            for entry in container.get("env", []):
                reference = entry.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    references.append((reference["name"], reference["key"]))
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                secret = volume["secret"]["secretName"]
                assert secret in made or f"`{secret}`" in readme, (variant, secret)
    for cluster in of_kind(objects, "Cluster").values():
        credentials = cluster["spec"]["backup"]["barmanObjectStore"]["s3Credentials"]
        references += [(ref["name"], ref["key"]) for ref in credentials.values()]
    assert references
    for name, key in references:
        if name.endswith("-app") and name.removesuffix("-app") in clusters:
            assert key in CNPG_APP_SECRET_KEYS, (variant, name, key)
        else:
            assert key in example.get(name, set()), (variant, name, key)
    assert "agency-keys" not in example["doudi-secrets"]


# --- who may reach whom ---


def rule_pods(rule: Object, direction: str) -> set[str]:
    """The ``app`` labels of the pods in a rule's from (or to) of this namespace."""
    return {
        peer["podSelector"]["matchLabels"]["app"]
        for peer in rule.get(direction, [])
        if "podSelector" in peer and "namespaceSelector" not in peer
    }


def rule_namespaces(rule: Object, direction: str) -> set[str]:
    return {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in rule.get(direction, [])
        if "namespaceSelector" in peer
    }


def rule_ports(rule: Object) -> set[int]:
    return {port["port"] for port in rule["ports"]}


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_policy_admits_exactly_the_callers_the_settings_name(variant: str) -> None:
    objects = render(variant)
    policies = of_kind(objects, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for name in PROCESSES:
        policy = policies[name]["spec"]
        assert policy["podSelector"] == {"matchLabels": {"app": name}}
        assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
        own = 8000 if name == "gateway" else service_port(name)
        admitted: dict[int, set[str]] = {}
        for rule in policy["ingress"]:
            for port in rule_ports(rule):
                admitted.setdefault(port, set()).update(
                    rule_pods(rule, "from") | {f"ns/{ns}" for ns in rule_namespaces(rule, "from")}
                )
        expected = {
            own: callers_of(name)
            | ({f"ns/{INGRESS_NAMESPACE}"} if name in ("gateway", "datashare") else set()),
            9090: {f"ns/{MONITORING_NAMESPACE}"},
        }
        assert admitted == expected, (variant, name)
        reached = {
            (pod, port)
            for rule in policy["egress"]
            for pod in rule_pods(rule, "to")
            for port in rule_ports(rule)
        }
        assert reached == {(peer, service_port(peer)) for peer in peers_of(name)}, (variant, name)


def test_the_callers_are_those_the_code_names() -> None:
    """The graph the policies follow, as the services' settings give it today."""
    assert {name: callers_of(name) for name in SERVICES} == {
        "enrollment": {"gateway"},
        "datashare": {"gateway", "enrollment", "assistance"},
        "settlement": {"gateway", "enrollment", "datashare", "assistance"},
        "assistance": {"gateway", "enrollment", "datashare", "settlement"},
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_pods_that_hold_a_database_url_reach_postgresql(variant: str) -> None:
    objects = render(variant)
    policies = of_kind(objects, "NetworkPolicy")
    clusters = of_kind(objects, "Cluster")
    holders = {
        workload["spec"]["template"]["metadata"]["labels"].get("doudi.io/database")
        for workload in [
            *of_kind(objects, "Deployment").values(),
            *of_kind(objects, "Job").values(),
        ]
    }
    assert holders == {*SERVICES, None}
    if not clusters:
        database = policies["allow-database"]["spec"]
        assert database["podSelector"] == {
            "matchExpressions": [{"key": "doudi.io/database", "operator": "Exists"}]
        }
        assert [rule_ports(rule) for rule in database["egress"]] == [{5432}]
        return
    assert "allow-database" not in policies
    for name in SERVICES:
        egress = policies[f"{name}-database"]["spec"]
        assert egress["podSelector"] == {"matchLabels": {"doudi.io/database": name}}
        (rule,) = egress["egress"]
        assert rule["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": f"pg-{name}"}}}]
        assert rule_ports(rule) == {5432}
        own = policies[f"pg-{name}"]["spec"]
        clients = [rule for rule in own["ingress"] if rule_ports(rule) == {5432}]
        assert clients[0]["from"] == [{"podSelector": {"matchLabels": {"doudi.io/database": name}}}]


# --- the rest of each workload ---


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_container_is_hardened(variant: str) -> None:
    objects = render(variant)
    for workload in [*of_kind(objects, "Deployment").values(), *of_kind(objects, "Job").values()]:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in [*spec["containers"], *spec.get("initContainers", [])]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
            assert container["resources"]["limits"]["memory"]


def test_every_process_has_a_disruption_budget_and_an_autoscaler_in_its_sizes_range() -> None:
    ranges = {"overlays/county": (1, 2), "overlays/province": (2, 16)}
    for variant, (low, high) in ranges.items():
        objects = render(variant)
        deployments = of_kind(objects, "Deployment")
        budgets = of_kind(objects, "PodDisruptionBudget")
        autoscalers = of_kind(objects, "HorizontalPodAutoscaler")
        assert set(budgets) == set(autoscalers) == set(deployments)
        for name, deployment in deployments.items():
            # The autoscaler owns the replicas: an applied number would undo its.
            assert "replicas" not in deployment["spec"]
            assert budgets[name]["spec"]["selector"] == deployment["spec"]["selector"]
            assert budgets[name]["spec"]["maxUnavailable"] == 1
            scaler = autoscalers[name]["spec"]
            assert scaler["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
            }
            assert low <= scaler["minReplicas"] <= scaler["maxReplicas"] <= high, (variant, name)
    province = of_kind(render("overlays/province"), "HorizontalPodAutoscaler")
    assert all(scaler["spec"]["minReplicas"] >= 2 for scaler in province.values())
    assert province["settlement"]["spec"]["maxReplicas"] > 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_ingresses_carry_tls_and_reach_the_gateway_and_the_hub(variant: str) -> None:
    objects = render(variant)
    ingresses = of_kind(objects, "Ingress")
    assert set(ingresses) == {"gateway", "datashare"}
    for name, ingress in ingresses.items():
        spec = ingress["spec"]
        (tls,) = spec["tls"]
        assert tls["secretName"] == f"{name}-ingress-tls"
        (rule,) = spec["rules"]
        assert rule["host"] in tls["hosts"]
        (path,) = rule["http"]["paths"]
        port = "http" if name == "gateway" else "grpc"
        assert path["backend"]["service"] == {"name": name, "port": {"name": port}}
    annotations = ingresses["datashare"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPCS"
    namespace, secret = annotations["nginx.ingress.kubernetes.io/proxy-ssl-secret"].split("/")
    assert namespace == NAMESPACE
    certificates = of_kind(objects, "Certificate")
    if certificates:
        assert secret in {item["spec"]["secretName"] for item in certificates.values()}
        for ingress in ingresses.values():
            assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]


@pytest.mark.parametrize("variant", [v for v in VARIANTS if "cert-manager" in v])
def test_each_processes_certificate_names_the_service_its_callers_dial(variant: str) -> None:
    objects = render(variant)
    certificates = {
        item["spec"]["secretName"]: item for item in of_kind(objects, "Certificate").values()
    }
    for name, deployment in of_kind(objects, "Deployment").items():
        (volume,) = [v for v in pod_spec(deployment)["volumes"] if "secret" in v]
        spec = certificates[volume["secret"]["secretName"]]["spec"]
        assert name in spec["dnsNames"]
        assert {"server auth", "client auth"} <= set(spec["usages"])
        assert spec["issuerRef"]["name"] == "doudi-ca"


@pytest.mark.parametrize("variant", [v for v in VARIANTS if "cloudnativepg" in v])
def test_each_service_has_its_own_cluster_database_and_nightly_backup(variant: str) -> None:
    objects = render(variant)
    clusters = of_kind(objects, "Cluster")
    databases = of_kind(objects, "Database")
    backups = of_kind(objects, "ScheduledBackup")
    deployments = of_kind(objects, "Deployment")
    for name in SERVICES:
        cluster = clusters[f"pg-{name}"]["spec"]
        assert cluster["bootstrap"]["initdb"] == {
            "database": name,
            "owner": name,
            "encoding": "UTF8",
            "dataChecksums": True,
        }
        assert cluster["backup"]["barmanObjectStore"]["destinationPath"]
        database = databases[f"pg-{name}"]["spec"]
        assert (database["cluster"]["name"], database["name"], database["owner"]) == (
            f"pg-{name}",
            name,
            name,
        )
        assert database["databaseReclaimPolicy"] == "retain"
        (backup,) = [
            b["spec"] for b in backups.values() if b["spec"]["cluster"]["name"] == f"pg-{name}"
        ]
        assert backup["method"] == "barmanObjectStore"
        url = {"secretKeyRef": {"name": f"pg-{name}-app", "key": "uri"}}
        deployment = deployments[name]
        for container in [main_container(deployment), *pod_spec(deployment)["initContainers"]]:
            assert environment(container, objects)["DOUDI_DATABASE_URL"] == url
        (migrate,) = pod_spec(migration_jobs(objects)[name])["containers"]
        assert environment(migrate, objects)["DOUDI_DATABASE_URL"] == url


# --- one server: compose ---


COMPOSE = DEPLOY / "compose.yaml"


@functools.cache
def compose() -> Object:
    loaded: Object = yaml.safe_load(COMPOSE.read_text())
    return loaded


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_follows_the_compose_specification(tmp_path: Path) -> None:
    checked = check_compose(COMPOSE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # What that check is worth: a misspelt key fails it.
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE.read_text().replace(
            "    restart: unless-stopped\n", "    restarts: unless-stopped\n", 1
        )
    )
    assert check_compose(broken).returncode != 0


def test_compose_migrates_once_before_the_services_start() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    script = migrate["command"][-1]
    steps = re.findall(r'DOUDI_DATABASE_URL="\$\$(\w+)" python -m services\.(\w+) migrate', script)
    assert [service for _, service in steps] == list(SERVICES)
    for variable, service in steps:
        assert (
            migrate["environment"][variable]
            == services[service]["environment"]["DOUDI_DATABASE_URL"]
        )
    for name in PROCESSES:
        service = services[name]
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"]
        if name in SERVICES:
            assert service["depends_on"] == {
                "migrate": {"condition": "service_completed_successfully"}
            }
            assert service["environment"]["DOUDI_MIGRATE_ON_START"] == "false"
            assert f"127.0.0.1:{service['environment']['DOUDI_HEALTH_PORT']}" in " ".join(
                service["healthcheck"]["test"]
            )
    assert "/readyz" in " ".join(services["gateway"]["healthcheck"]["test"])
    init = (DEPLOY / "compose" / "init-databases.sh").read_text()
    assert "for service in " + " ".join(SERVICES) + "; do" in init


def test_compose_sets_only_settings_the_processes_read_and_every_peer() -> None:
    services = compose()["services"]
    for name, module in PROCESSES.items():
        service = services[name]
        assert service["command"] == ["python", "-m", module]
        settings = service["environment"]
        assert not set(settings) - known_settings(settings_class(name)), name
        for peer in peers_of(name):
            assert (
                settings[f"DOUDI_{peer.upper()}_ADDRESS"] == f"dns:///{peer}:{service_port(peer)}"
            )
        assert settings["DOUDI_ENVIRONMENT"] == "production"
        assert settings["DOUDI_TLS_CA_FILE"].startswith("/run/secrets/")


def test_every_variable_compose_takes_from_env_is_in_the_example() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "compose" / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used == example


# --- the image ---


def test_the_dockerfile_copies_what_exists_and_installs_the_pinned_versions() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    # From the repository (a COPY --from=STAGE copies from an earlier stage instead).
    for sources in re.findall(r"^COPY (?!--from=)(.+) \S+$", dockerfile, flags=re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), source
    assert "-c constraints.txt" in dockerfile
    assert re.search(r"^USER \d+$", dockerfile, flags=re.MULTILINE)


def test_the_image_has_the_console_libraries_where_the_gateway_looks() -> None:
    """The console's npm libraries are installed from the lockfile with npm ci in a stage
    of their own, every file the gateway serves is kept, and the folder they are copied to
    is the one DOUDI_CONSOLE_VENDOR_DIR names."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    lockfile = "gateway/console/static-vendor/package-lock.json"
    assert (ROOT / lockfile).is_file()
    assert re.search(rf"^COPY .*{re.escape(lockfile)} ", dockerfile, flags=re.MULTILINE)
    assert re.search(r"^RUN npm ci\b", dockerfile, flags=re.MULTILINE)
    for path in vendor.VENDOR_FILES.values():
        assert f"node_modules/{path.as_posix()}" in dockerfile, path
    match = re.search(rf"\b{vendor.VENDOR_DIR_ENV}=(\S+)", dockerfile)
    assert match is not None, f"the image sets no {vendor.VENDOR_DIR_ENV}"
    assert re.search(
        rf"^COPY --from=\S+ \S+/node_modules {re.escape(match.group(1))}$",
        dockerfile,
        flags=re.MULTILINE,
    )


# --- the health port the probes use ---


@pytest.fixture
def service_with_tls(tmp_path: Path) -> Iterator[tuple[RunningService, int]]:
    """Settlement serving mutual TLS on its port, and DOUDI_HEALTH_PORT beside it."""
    ca = authority(tmp_path)
    own = ca.issue(tmp_path, "settlement")
    health_port = free_port()
    env = {
        "DOUDI_HEALTH_PORT": str(health_port),
        "DOUDI_TLS_CERT_FILE": str(own.cert),
        "DOUDI_TLS_KEY_FILE": str(own.key),
        "DOUDI_TLS_CA_FILE": str(ca.ca),
        "DOUDI_TLS_CLIENT_AUTH": "require",
    }
    with running_service("settlement", tmp_path, env=env) as service:
        yield service, health_port


def test_the_health_port_answers_the_probes_in_plaintext_beside_a_tls_port(
    service_with_tls: tuple[RunningService, int],
) -> None:
    """Kubelet's gRPC probes speak no TLS, and a service with mutual TLS refuses a client
    without a certificate: the probes ask DOUDI_HEALTH_PORT, which serves the health
    check in plaintext and nothing else."""
    service, health_port = service_with_tls
    with grpc.insecure_channel(f"127.0.0.1:{health_port}") as channel:
        assert serving_status(channel, timeout=5) == "SERVING"
        health = health_pb2_grpc.HealthStub(channel)
        alive = health.Check(health_pb2.HealthCheckRequest(service=LIVENESS_SERVICE), timeout=5)
        assert alive.status == health_pb2.HealthCheckResponse.SERVING
        # Nothing but the health check: not the service's own methods, nor reflection.
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary("/doudi.settlement.v1.SettlementService/GetHospital")(
                b"", timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # The service's own port speaks TLS only, to clients with a certificate of the CA.
    with grpc.insecure_channel(service.address) as plaintext:
        assert serving_status(plaintext, timeout=2) == "UNAVAILABLE"
    assert serving_status(service.channel(), timeout=5) == "SERVING"
