"""The deployment files, checked statically (no Docker or cluster here).

Every process in deploy/kubernetes runs a module that exists, listens where its
probes and Service look, reads only settings its Settings class knows, and
takes its secrets from keys the example Secret documents.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.console import vendor

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
PROCESSES = {
    "enrollment": "services.enrollment",
    "datashare": "services.datashare",
    "settlement": "services.settlement",
    "assistance": "services.assistance",
    "gateway": "gateway",
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def manifest(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    found = {document["kind"]: document for document in documents(KUBERNETES / f"{name}.yaml")}
    return found["Deployment"], found["Service"]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_of(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in spec.get("env", [])}


def test_kustomization_lists_every_manifest_and_every_manifest_is_listed() -> None:
    (kustomization,) = documents(KUBERNETES / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {
        path.name
        for path in KUBERNETES.glob("*.yaml")
        if path.name not in {"kustomization.yaml", "secrets.example.yaml"}
    }
    assert listed == present


@pytest.mark.parametrize("name", PROCESSES)
def test_each_process_runs_its_own_module(name: str) -> None:
    deployment, _ = manifest(name)
    spec = container(deployment)
    assert spec["command"] == ["python", "-m", PROCESSES[name]]
    assert importlib.util.find_spec(f"{PROCESSES[name]}.__main__") is not None


@pytest.mark.parametrize("name", PROCESSES)
def test_port_probes_and_service_agree(name: str) -> None:
    deployment, service = manifest(name)
    spec = container(deployment)
    (port,) = spec["ports"]
    assert env_of(spec)["DOUDI_PORT"]["value"] == str(port["containerPort"])
    readiness = spec["readinessProbe"]
    probe_port = (readiness.get("grpc") or readiness.get("httpGet"))["port"]
    assert probe_port in (port["containerPort"], port["name"])
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("name", PROCESSES)
def test_every_setting_in_a_manifest_is_one_the_process_reads(name: str) -> None:
    module = "gateway.settings" if name == "gateway" else f"services.{name}.settings"
    settings_class = importlib.import_module(module).Settings
    known = {f"DOUDI_{field.upper()}" for field in settings_class.model_fields}
    deployment, _ = manifest(name)
    assert set(env_of(container(deployment))) <= known


def test_every_secret_a_manifest_reads_is_in_the_example_secret() -> None:
    (secret,) = documents(KUBERNETES / "secrets.example.yaml")
    keys = set(secret["stringData"])
    for name in PROCESSES:
        deployment, _ = manifest(name)
        for entry in env_of(container(deployment)).values():
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference["name"] == secret["metadata"]["name"]
                assert reference["key"] in keys, (name, reference["key"])


@pytest.mark.parametrize("name", PROCESSES)
def test_containers_run_as_non_root_without_privilege_escalation(name: str) -> None:
    deployment, _ = manifest(name)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container(deployment)["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_dockerfile_copies_what_exists_and_installs_the_pinned_versions() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
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
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
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
