"""The load test component: one bounded distributed Locust run in the cluster, as the demo
stack renders it; its isolation; its results fetched from the pods' logs; the config errors."""

from __future__ import annotations

import copy
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from zwfw_infra import labels, loadtest
from zwfw_infra.config import ConfigError, parse
from zwfw_infra.paths import LOAD_PROFILES
from zwfw_infra.render import Rendered, render, stack_values

from zwfw.harness.profile import load_profile
from zwfw.harness.workload import load_workload

LOAD_NS = "zwfw-load-340000"


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def _container(job: dict[str, Any]) -> dict[str, Any]:
    [container] = _pod(job)["containers"]
    return container


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_demo_stack_runs_one_load_test_in_its_own_tenant_namespace(demo: Rendered) -> None:
    namespace = demo.find("Namespace", LOAD_NS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["metadata"]["labels"][labels.TENANT_KIND] == "loadtest"
    assert demo.find("ResourceQuota", "tenant-quota", LOAD_NS)
    assert demo.find("LimitRange", "tenant-limits", LOAD_NS)
    binding = demo.find("RoleBinding", "tenant-ops", LOAD_NS)
    assert binding["subjects"][0]["name"] == "province-a-ops"  # the target's own team
    jobs = {
        j["metadata"]["name"]: j
        for j in demo.of_kind("Job")
        if j["metadata"]["namespace"] == LOAD_NS
    }
    assert set(jobs) == {"load-master", "load-workers"}
    service = demo.find("Service", "load-master", LOAD_NS)
    master_labels = jobs["load-master"]["spec"]["template"]["metadata"]["labels"]
    assert all(master_labels[k] == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"] == [
        {"name": "locust", "port": 5557, "protocol": "TCP", "targetPort": "locust"}
    ]
    outputs = demo.outputs["load_test"]
    assert outputs["namespace"] == LOAD_NS
    assert (outputs["master_job"], outputs["worker_job"]) == ("load-master", "load-workers")
    assert outputs["wait"].startswith(f"kubectl -n {LOAD_NS} wait --for=condition=complete")
    assert "logs job/load-master" in outputs["fetch"]["master"]


def test_a_stack_without_load_test_has_none(province: Rendered) -> None:
    assert province.outputs["load_test"] is None
    assert not [
        n for n in province.of_kind("Namespace")
        if n["metadata"]["labels"][labels.TENANT_KIND] == "loadtest"
    ]  # fmt: skip


def test_the_run_is_bounded_and_distributed_as_configured(demo: Rendered) -> None:
    config = parse({**stack_values("demo"), **_pki()}).load_test
    assert config is not None
    master = demo.find("Job", "load-master", LOAD_NS)
    workers = demo.find("Job", "load-workers", LOAD_NS)
    args = _container(master)["args"]
    assert "--master" in args
    assert "--headless" in args
    assert _option(args, "--run-time") == "60s"
    assert _option(args, "--expect-workers") == "2"
    assert int(_option(args, "--expect-workers-max-wait")) == loadtest.START_SECONDS
    # The short profile's pool (48 journeys in flight), started at once (open model).
    assert (_option(args, "--users"), _option(args, "--spawn-rate")) == ("48", "48")
    deadline = loadtest.START_SECONDS + 60 + 20 + loadtest.RESULTS_SECONDS
    for job in (master, workers):
        spec = job["spec"]
        assert spec["activeDeadlineSeconds"] == deadline
        assert spec["ttlSecondsAfterFinished"] == 86400
        assert spec["backoffLimit"] == 0
        assert _pod(job)["restartPolicy"] == "Never"
        assert job["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
        env = {e["name"]: e.get("value") for e in _container(job)["env"]}
        assert env["ZWFW_LOAD_PROCESSES"] == "2"
        assert _container(job)["command"][:2] == ["/bin/sh", "-c"]
        assert _container(job)["image"] == "registry.demo.zwfw.example/zwfw/zwfw:0.1.0"
        assert loadtest.LOCUSTFILE in _container(job)["args"]
    assert (workers["spec"]["parallelism"], workers["spec"]["completions"]) == (2, 2)
    worker_args = _container(workers)["args"]
    assert "--worker" in worker_args
    assert _option(worker_args, "--master-host") == f"load-master.{LOAD_NS}.svc"
    assert "--processes" not in worker_args  # one process per worker pod


def test_the_generators_get_the_shipped_workload_and_a_profile_the_harness_accepts(
    demo: Rendered, tmp_path: Path
) -> None:
    settings = demo.find("ConfigMap", "load-settings", LOAD_NS)["data"]
    shipped = LOAD_PROFILES / "short.yaml"
    assert settings["workload.yaml"] == shipped.read_text(encoding="utf-8")
    assert load_workload(shipped) == _loaded_workload(settings["workload.yaml"], tmp_path)
    # The pod's view: the ConfigMap's files beside the client certificate Secret's.
    for name, text in settings.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    client = demo.find("Secret", "load-client-tls", LOAD_NS)
    assert client["type"] == "kubernetes.io/tls"
    (tmp_path / "client").mkdir()
    for name, text in client["stringData"].items():
        (tmp_path / "client" / name).write_text(text, encoding="utf-8")
    profile = load_profile(tmp_path / "target.yaml")
    assert profile.region_code == "340000"
    assert profile.services.configured() == {
        "identity": "https://identity.340000.demo.zwfw.example",
        "hall": "https://hall.340000.demo.zwfw.example",
        "elicense": "https://elicense.340000.demo.zwfw.example",
        "eseal": "https://eseal.340000.demo.zwfw.example",
        # Case reports go to the national hub's intake, behind mutual TLS.
        "hub": "https://intake.hub.100000.demo.zwfw.example",
    }
    assert profile.tls.client_cert is not None
    assert profile.tls.ca_bundle is not None
    assert profile.declared.implementation_codes
    # The public certificates come from the demo's internal CA: the generators trust it.
    assert "BEGIN CERTIFICATE" in settings["ca.crt"]
    master = _container(demo.find("Job", "load-master", LOAD_NS))
    assert _option(master["args"], "--host") == profile.base_url("hall")
    # The master loads its own profile at start, without the client certificate it lacks.
    master_target = next(e["value"] for e in master["env"] if e["name"] == "ZWFW_LOAD_TARGET")
    master_profile = load_profile(tmp_path / Path(master_target).name)
    assert master_profile.tls.client_cert is None
    assert master_profile.services == profile.services
    worker = _container(demo.find("Job", "load-workers", LOAD_NS))
    assert next(e["value"] for e in worker["env"] if e["name"] == "ZWFW_LOAD_TARGET") == (
        f"{loadtest.LOAD_MOUNT}/target.yaml"
    )


def _loaded_workload(text: str, tmp_path: Path) -> Any:
    path = tmp_path / "as-shipped.yaml"
    path.write_text(text, encoding="utf-8")
    return load_workload(path)


def test_credentials_only_from_secret_config_and_only_for_the_workers(demo: Rendered) -> None:
    secret = demo.find("Secret", "load-credentials", LOAD_NS)
    names = stack_values("demo")["loadTest"]["credentials"]
    assert set(secret["stringData"]) == {loadtest.credential_variable(n) for n in names}
    for key in secret["stringData"]:
        assert ("Secret", LOAD_NS, "load-credentials", key) in demo.secret_paths
    for key in ("tls.crt", "tls.key"):
        assert ("Secret", LOAD_NS, "load-client-tls", key) in demo.secret_paths
    workers = _container(demo.find("Job", "load-workers", LOAD_NS))
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in workers["env"] if "valueFrom" in e
    }
    assert set(from_secret) == set(secret["stringData"])
    assert {ref["name"] for ref in from_secret.values()} == {"load-credentials"}
    settings = demo.find("ConfigMap", "load-settings", LOAD_NS)["data"]
    profile = yaml.safe_load(settings["target.yaml"])
    assert {c["env"] for c in profile["credentials"].values()} == set(from_secret)
    master = _container(demo.find("Job", "load-master", LOAD_NS))
    assert not [e for e in master["env"] if "valueFrom" in e]
    master_volumes = _pod(demo.find("Job", "load-master", LOAD_NS))["volumes"]
    assert not [v for v in master_volumes if "secret" in v]


def test_results_written_to_the_log_unpack_with_the_documented_pipeline(tmp_path: Path) -> None:
    """The container's own script, with a stand-in for Locust writing what Locust and the
    generator write, then the fetch recipe's pipeline over the log it produced."""
    results, bin_dir, out = tmp_path / "results", tmp_path / "bin", tmp_path / "out"
    for folder in (results, bin_dir, out):
        folder.mkdir()
    locust = bin_dir / "locust"
    locust.write_text(
        "#!/bin/sh\n"
        f'echo "Locust summary for $*" >&2\n'
        f"mkdir -p {results}/records\n"
        f"printf 'Type,Name\\nGET,catalog\\n' > {results}/locust_stats.csv\n"
        f"""printf '["r",1.0,"catalog",12.5,200,null]\\n' > {results}/records/records-7.jsonl\n"""
        "exit 3\n",
        encoding="utf-8",
    )
    locust.chmod(locust.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run = subprocess.run(
        ["/bin/sh", "-c", loadtest.results_script(str(results)), "locust", "--master"],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert run.returncode == 3  # Locust's own exit code
    log = run.stderr + run.stdout  # what kubectl logs shows
    unpack = subprocess.run(
        ["/bin/sh", "-c", loadtest.unpack_pipeline(str(out))],
        input=log, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert unpack.returncode == 0, unpack.stderr
    assert (out / "locust_stats.csv").read_text() == "Type,Name\nGET,catalog\n"
    assert (out / "records" / "records-7.jsonl").read_text().startswith('["r",1.0,"catalog"')
    assert (out / "exit-code").read_text().strip() == "3"


def _pki() -> dict[str, Any]:
    return {
        "pki": {
            "internalCaCertificate": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
            "channelCaCertificate": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        }
    }


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda load: load.__setitem__(key, value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda load: load.pop("runSeconds"), r"^loadTest\.runSeconds is required"),
        (_set("runSeconds", 10), r"^loadTest\.runSeconds: 10 s is shorter than profile short"),
        (_set("runSeconds", 86400), r"^loadTest\.runSeconds: at most 21600 s"),
        (_set("target", "province-z"), r"^loadTest\.target: 'province-z' is not a platform"),
        (lambda load: load.pop("target"), r"^loadTest\.target is required"),
        (_set("profile", "nightly"), r"^loadTest\.profile: no workload profile 'nightly'"),
        (_set("workers", 0), r"^loadTest\.workers: expected an integer >= 1"),
        (_set("workers", 1), r"^loadTest\.workers: each of 1 worker pods would send about 22"),
        (_set("processesPerWorker", "2"), r"^loadTest\.processesPerWorker"),
        (_set("duration", 60), r"^unknown key loadTest\.duration"),
        (_set("namespace", "zwfw-340000"), r"^loadTest\.namespace: 'zwfw-340000' is a tenant"),
        (_set("credentials", ["Bad-Name"]), r"^loadTest\.credentials: 'Bad-Name' is not valid"),
        (_set("declared", {"codes": ["1"]}), r"^loadTest\.declared: codes: Extra inputs"),
        (_set("resources", {"worker": {"cpuLimit": "lots"}}), r"^loadTest\.resources\.worker"),
        (_set("quota", {"pods": 2}), r"^loadTest\.workers: 2 workers and the master exceed"),
    ],
)
def test_bad_load_test_configuration_is_refused_in_one_line(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    values = {**copy.deepcopy(stack_values("demo")), **_pki()}
    parse(values)
    change(values["loadTest"])
    with pytest.raises(ConfigError, match=message) as caught:
        parse(values)
    assert "\n" not in str(caught.value)


def test_no_client_certificate_for_a_national_side_outside_the_cluster() -> None:
    values = {**copy.deepcopy(stack_values("province-example")), **_pki()}
    values["loadTest"] = {"target": "anhui", "profile": "short", "workers": 2, "runSeconds": 30}
    assert parse(values).load_test is not None
    values["loadTest"]["clientCertificate"] = True
    with pytest.raises(ConfigError, match=r"^loadTest\.clientCertificate: only a province"):
        parse(values)


def test_a_missing_test_credential_is_named_in_one_line() -> None:
    from zwfw_infra.render import deploy_time_values

    values = stack_values("demo")
    _, secrets = deploy_time_values(values)
    del secrets["province-a"]["loadtest"]["hub_report_token"]
    with pytest.raises(
        ConfigError, match=r"^secret zwfw:secrets\.province-a\.loadtest\.hub_report_token "
    ):
        render("demo", values=values, secret_values=secrets)


def test_the_image_has_the_locustfile_and_everything_it_imports_from_beside_it() -> None:
    """The cluster runs the hosts' locustfile from the image: the Containerfile copies it, with
    every module of loadtests/ it imports, to where the Jobs look for it."""
    import ast

    from zwfw_infra.paths import LOADTESTS, REPOSITORY

    text = (REPOSITORY / "Containerfile").read_text(encoding="utf-8")
    final = text.rsplit("\nFROM ", 1)[1]
    [copy_line] = [line for line in final.splitlines() if line.startswith("COPY loadtests/")]
    *sources, destination = copy_line.split()[1:]
    assert destination.rstrip("/") == str(Path(loadtest.LOCUSTFILE).parent)
    copied = {Path(source).name for source in sources}
    assert Path(loadtest.LOCUSTFILE).name in copied
    local = {path.stem for path in LOADTESTS.glob("*.py")}
    for name in copied:
        tree = ast.parse((LOADTESTS / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module.split(".")[0]
            elif isinstance(node, ast.Import):
                module = node.names[0].name.split(".")[0]
            else:
                continue
            if module in local:
                assert f"{module}.py" in copied, f"{name} imports {module}, not in the image"
