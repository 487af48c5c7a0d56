"""One bounded, distributed Locust run in the cluster against a platform of the stack: loads
one machine cannot generate (issue 14), from inside the intensive government cloud.

The run lives in its own namespace under the tenant baseline (Pod Security ``restricted``,
quota, limit range, default deny with DNS). A master Job runs Locust headless, waits for its
workers at most ``START_SECONDS``, stops the load after the configured run time and ends the
workers; a worker Job runs the generator processes. Both run the zwfw image's copy of the
same locustfile hosts run (``loadtests/locustfile.py``), with the workload profile and a
target profile (the target's public URLs, the CA it is trusted by, credentials named by
environment variables) from a ConfigMap and the credentials from a Secret made of Pulumi
secret config. The generators reach the target only through the ingress controller, as
citizens do, and the workers reach the master: nothing else.

Results: when Locust ends, each pod writes what it produced (the master: Locust's CSV and
HTML reports; a worker: the generator's records, every request and journey) to its log as a
base64 tar.gz between marker lines, so ``kubectl logs`` (which the tenant's ops group may
read; it may not exec into pods) fetches them for as long as the finished Jobs are kept.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from zwfw_infra import labels
from zwfw_infra.config import LoadTestConfig, Resources, StackConfig
from zwfw_infra.secrets import Secrets
from zwfw_infra.service import container_security, pod_security, resource_requirements
from zwfw_infra.tenancy import Tenant, TenantArgs

LOCUST_PORT = 5557
# Where the image has the load suite's locustfile (Containerfile).
LOCUSTFILE = "/opt/zwfw/loadtests/locustfile.py"
LOAD_MOUNT = "/etc/zwfw/load"
CLIENT_MOUNT = f"{LOAD_MOUNT}/client"
RESULTS_MOUNT = "/results"
# How long the master waits for its workers (image pulls, scheduling) before giving up.
START_SECONDS = 300
# Writing the results to the log after Locust ended.
RESULTS_SECONDS = 60
HTTPS_PORT = 443
MASTER_COMPONENT = "load-master"
WORKER_COMPONENT = "load-worker"
MASTER = "load-master"
WORKERS = "load-workers"
ACCOUNT = "load-generator"
SETTINGS = "load-settings"
CREDENTIALS = "load-credentials"
CLIENT_TLS = "load-client-tls"
# Lines around the results in a pod's log.
RESULTS_BEGIN = "-----BEGIN ZWFW LOAD RESULTS-----"
RESULTS_END = "-----END ZWFW LOAD RESULTS-----"


def results_script(directory: str = RESULTS_MOUNT) -> str:
    """Runs Locust (``"$@"``), then writes ``directory`` to the log as a base64 tar.gz
    between the marker lines, keeping Locust's exit code (also in ``exit-code`` there)."""
    return (
        'locust "$@"; code=$?\n'
        f'echo "$code" > {directory}/exit-code\n'
        f"echo '{RESULTS_BEGIN}'\n"
        f"tar -czf - -C {directory} . | base64\n"
        f"echo '{RESULTS_END}'\n"
        'exit "$code"\n'
    )


def unpack_pipeline(destination: str) -> str:
    """The shell pipeline that unpacks, from a pod's log on its input, the results it wrote."""
    markers = f"/^{RESULTS_END}$/{{p=0}} p; /^{RESULTS_BEGIN}$/{{p=1}}"
    return f"awk {shlex.quote(markers)} | base64 -d | tar -xzf - -C {destination}"


def credential_variable(name: str) -> str:
    """The environment variable holding credential ``name`` in the generator pods."""
    return f"ZWFW_LOAD_{name.upper()}"


def extract_command(namespace: str, pod: str, destination: str) -> str:
    """Fetches the results a pod wrote to its log into ``destination``."""
    fetch = f"mkdir -p {destination} && kubectl -n {namespace} logs {pod}"
    return f"{fetch} | {unpack_pipeline(destination)}"


def target_profile(load: LoadTestConfig, stack: StackConfig) -> dict[str, Any]:
    """The harness's target profile (``zwfw.harness.profile``) the generators run with: the
    target's public URLs (through the ingress, as citizens reach them), its trust, and the
    credentials by environment variable (values only in the Secret)."""
    target = next(p for p in stack.platforms if p.name == load.target)
    services = {s.name: f"https://{stack.public_host(target, s.name)}" for s in target.services}
    tls: dict[str, str] = {}
    if load.ca_certificate is not None:
        tls["ca_bundle"] = "ca.crt"
    if load.client_certificate:
        national = stack.national
        assert national is not None  # config.py allows a client certificate only then
        # Case reports go to the hub's province-facing intake, behind mutual TLS.
        services["hub"] = f"https://{stack.intake_host(national)}"
        tls["client_cert"] = "client/tls.crt"
        tls["client_key"] = "client/tls.key"
    profile: dict[str, Any] = {
        "name": f"{target.name} ({target.namespace}), load test in the cluster",
        "region_code": target.region_code,
        "services": services,
        "credentials": {name: {"env": credential_variable(name)} for name in load.credentials},
    }
    if tls:
        profile["tls"] = tls
    if load.declared:
        profile["declared"] = {kind: list(values) for kind, values in load.declared.items()}
    return profile


@dataclass(frozen=True)
class LoadTestArgs:
    load: LoadTestConfig
    stack: StackConfig
    secrets: Secrets
    common_labels: Mapping[str, str]


@dataclass(frozen=True)
class LoadTestOutputs:
    """What the operator (and the harness, through the stack outputs) needs of the run."""

    namespace: str
    target: str
    profile: str
    master_job: str
    worker_job: str
    master_service: str
    workers: int
    processes: int
    run_seconds: int
    deadline_seconds: int
    wait: str
    fetch_master: str
    fetch_workers: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "target": self.target,
            "profile": self.profile,
            "master_job": self.master_job,
            "worker_job": self.worker_job,
            "master_service": self.master_service,
            "workers": self.workers,
            "processes": self.processes,
            "run_seconds": self.run_seconds,
            "deadline_seconds": self.deadline_seconds,
            "wait": self.wait,
            "fetch": {"master": self.fetch_master, "workers": self.fetch_workers},
        }


class LoadTest(pulumi.ComponentResource):
    """Namespace with the tenant baseline, the run's NetworkPolicies, settings ConfigMap,
    credentials Secret, master Job and Service, worker Job."""

    outputs: LoadTestOutputs

    def __init__(self, name: str, args: LoadTestArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zwfw:loadtest:LoadTest", name, None, opts)
        load = args.load
        ns = load.namespace
        common = {**args.common_labels, labels.TENANT: f"{load.target}-load"}
        tenant = Tenant(
            f"{name}-tenant",
            TenantArgs(
                name=f"{load.target}-load",
                namespace=ns,
                kind="loadtest",
                title=f"load test of {load.target}",
                ops_group=load.ops_group,
                quota=load.quota,
                cluster=args.stack.cluster,
                common_labels=common,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._ns = ns
        self._common = common
        self._cluster = args.stack.cluster
        self._image = args.stack.image.reference
        self._in_ns = pulumi.ResourceOptions(parent=self, depends_on=[tenant])
        master_labels = {**common, labels.NAME: "locust", labels.COMPONENT: MASTER_COMPONENT}
        worker_labels = {**common, labels.NAME: "locust", labels.COMPONENT: WORKER_COMPONENT}
        self._network()

        profile = target_profile(load, args.stack)
        # The master sends no request: its profile has no client certificate to mount.
        master_profile = {
            **profile,
            "tls": {k: v for k, v in profile.get("tls", {}).items() if not k.startswith("client")},
        }
        settings_data = {
            "workload.yaml": load.profile_text,
            "target.yaml": yaml.safe_dump(profile, sort_keys=False, allow_unicode=True),
            "master-target.yaml": yaml.safe_dump(
                master_profile, sort_keys=False, allow_unicode=True
            ),
        }
        if load.ca_certificate is not None:
            settings_data["ca.crt"] = load.ca_certificate
        settings = k8s.core.v1.ConfigMap(
            f"{name}-settings",
            metadata=self._metadata(SETTINGS),
            data=settings_data,
            opts=self._in_ns,
        )
        credentials = {
            credential_variable(c): args.secrets.value(load.target, "loadtest", c)
            for c in load.credentials
        }
        secret = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=self._metadata(CREDENTIALS),
            type="Opaque",
            string_data=pulumi.Output.secret(pulumi.Output.all(**credentials)),
            opts=self._in_ns,
        )
        depends: list[pulumi.Resource] = [tenant, settings, secret]
        if load.client_certificate:
            depends.append(
                k8s.core.v1.Secret(
                    f"{name}-client-tls",
                    metadata=self._metadata(CLIENT_TLS),
                    type="kubernetes.io/tls",
                    string_data=pulumi.Output.secret(
                        pulumi.Output.all(
                            **{
                                "tls.crt": args.secrets.value(
                                    load.target, "loadtest", "client_cert"
                                ),
                                "tls.key": args.secrets.value(
                                    load.target, "loadtest", "client_key"
                                ),
                            }
                        )
                    ),
                    opts=self._in_ns,
                )
            )
        depends.append(
            k8s.core.v1.ServiceAccount(
                f"{name}-account",
                metadata=self._metadata(ACCOUNT),
                # The generators never call the Kubernetes API.
                automount_service_account_token=False,
                opts=self._in_ns,
            )
        )
        k8s.core.v1.Service(
            f"{name}-master-service",
            metadata=self._metadata(MASTER),
            spec={
                "type": "ClusterIP",
                "selector": {labels.COMPONENT: MASTER_COMPONENT, labels.NAME: "locust"},
                "ports": [
                    {
                        "name": "locust",
                        "port": LOCUST_PORT,
                        "target_port": "locust",
                        "protocol": "TCP",
                    }
                ],
            },
            opts=self._in_ns,
        )
        deadline = START_SECONDS + load.run_seconds + load.stop_timeout_seconds + RESULTS_SECONDS
        hall = profile["services"].get("hall") or next(iter(profile["services"].values()))
        master_args = [
            "-f", LOCUSTFILE,
            "--master", "--headless", "--only-summary",
            "--master-bind-port", str(LOCUST_PORT),
            "--expect-workers", str(load.processes),
            "--expect-workers-max-wait", str(START_SECONDS),
            "--users", str(load.users),
            "--spawn-rate", f"{load.spawn_rate:g}",
            "--run-time", f"{load.run_seconds}s",
            "--stop-timeout", str(load.stop_timeout_seconds),
            "--host", hall,
            "--csv", f"{RESULTS_MOUNT}/locust", "--csv-full-history",
            "--html", f"{RESULTS_MOUNT}/locust.html",
            "--exit-code-on-error", "0",
            "--loglevel", "WARNING",
        ]  # fmt: skip
        worker_args = [
            "-f", LOCUSTFILE,
            "--worker",
            "--master-host", f"{MASTER}.{ns}.svc",
            "--master-port", str(LOCUST_PORT),
            "--loglevel", "WARNING",
            *(["--processes", str(load.processes_per_worker)]
              if load.processes_per_worker > 1 else []),
        ]  # fmt: skip
        job_opts = pulumi.ResourceOptions(parent=self, depends_on=depends)
        self._job(
            f"{name}-master",
            MASTER,
            master_labels,
            master_args,
            load.master_resources,
            deadline,
            load,
            with_credentials=False,
            ports=[{"name": "locust", "container_port": LOCUST_PORT, "protocol": "TCP"}],
            opts=job_opts,
        )
        self._job(
            f"{name}-workers",
            WORKERS,
            worker_labels,
            worker_args,
            load.worker_resources,
            deadline,
            load,
            with_credentials=True,
            ports=[],
            opts=job_opts,
            parallelism=load.workers,
        )
        worker_pods = f"{labels.COMPONENT}={WORKER_COMPONENT}"
        self.outputs = LoadTestOutputs(
            namespace=ns,
            target=load.target,
            profile=load.profile,
            master_job=MASTER,
            worker_job=WORKERS,
            master_service=MASTER,
            workers=load.workers,
            processes=load.processes,
            run_seconds=load.run_seconds,
            deadline_seconds=deadline,
            wait=f"kubectl -n {ns} wait --for=condition=complete job/{MASTER} "
            f"--timeout={deadline}s",
            fetch_master=extract_command(ns, f"job/{MASTER}", "out/load/master"),
            fetch_workers=(
                f"for pod in $(kubectl -n {ns} get pods -l {worker_pods} -o name); do "
                + extract_command(ns, '"$pod"', 'out/load/workers/"${pod#pod/}"')
                + "; done"
            ),
        )
        self.register_outputs({"load_test": json.dumps(self.outputs.as_dict())})

    def _metadata(self, name: str) -> dict[str, Any]:
        return {"name": name, "namespace": self._ns, "labels": dict(self._common)}

    def _network(self) -> None:
        cluster = self._cluster
        master_pods = {"match_labels": {labels.COMPONENT: MASTER_COMPONENT}}
        worker_pods = {"match_labels": {labels.COMPONENT: WORKER_COMPONENT}}
        locust = [{"protocol": "TCP", "port": LOCUST_PORT}]
        ingress_controller = {
            "namespace_selector": {
                "match_labels": {labels.NAMESPACE_NAME: cluster.ingress.namespace}
            },
            "pod_selector": {"match_labels": dict(cluster.ingress.pod_labels)},
        }
        policies: dict[str, dict[str, Any]] = {
            "master-from-workers": {
                "pod_selector": master_pods,
                "policy_types": ["Ingress"],
                "ingress": [{"from": [{"pod_selector": worker_pods}], "ports": locust}],
            },
            "workers-to-master": {
                "pod_selector": worker_pods,
                "policy_types": ["Egress"],
                "egress": [{"to": [{"pod_selector": master_pods}], "ports": locust}],
            },
            # The target as citizens reach it: its public hosts, at the ingress controller.
            "workers-to-target": {
                "pod_selector": worker_pods,
                "policy_types": ["Egress"],
                "egress": [
                    {
                        "to": [ingress_controller],
                        "ports": [{"protocol": "TCP", "port": HTTPS_PORT}],
                    }
                ],
            },
        }
        for policy, spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                f"{self._ns}-{policy}",
                metadata=self._metadata(policy),
                spec=spec,
                opts=self._in_ns,
            )

    def _job(
        self,
        resource_name: str,
        job_name: str,
        pod_labels: Mapping[str, str],
        locust_args: list[str],
        resources: Resources,
        deadline: int,
        load: LoadTestConfig,
        *,
        with_credentials: bool,
        ports: list[dict[str, Any]],
        opts: pulumi.ResourceOptions,
        parallelism: int = 1,
    ) -> k8s.batch.v1.Job:
        env: list[dict[str, Any]] = [
            {"name": "HOME", "value": "/tmp"},
            {
                "name": "ZWFW_LOAD_TARGET",
                "value": f"{LOAD_MOUNT}/{'target' if with_credentials else 'master-target'}.yaml",
            },
            {"name": "ZWFW_LOAD_WORKLOAD", "value": f"{LOAD_MOUNT}/workload.yaml"},
            {"name": "ZWFW_LOAD_RECORDS", "value": f"{RESULTS_MOUNT}/records"},
            # Arrivals are dealt round-robin over every generator process of the run.
            {"name": "ZWFW_LOAD_PROCESSES", "value": str(load.processes)},
            {"name": "LOCUST_SKIP_MONKEY_PATCH_CHECK", "value": "1"},
        ]
        if with_credentials:
            env += [
                {
                    "name": credential_variable(c),
                    "value_from": {
                        "secret_key_ref": {"name": CREDENTIALS, "key": credential_variable(c)}
                    },
                }
                for c in load.credentials
            ]
        volumes: list[dict[str, Any]] = [
            {"name": "settings", "config_map": {"name": SETTINGS, "default_mode": 0o444}},
            {"name": "results", "empty_dir": {"size_limit": "1Gi"}},
            # The root filesystem is read-only; Python may want a scratch dir.
            {"name": "tmp", "empty_dir": {"medium": "Memory", "size_limit": "64Mi"}},
        ]
        mounts: list[dict[str, Any]] = [
            {"name": "settings", "mount_path": LOAD_MOUNT, "read_only": True},
            {"name": "results", "mount_path": RESULTS_MOUNT},
            {"name": "tmp", "mount_path": "/tmp"},
        ]
        if with_credentials and load.client_certificate:
            volumes.append(
                {"name": "client-tls", "secret": {"secret_name": CLIENT_TLS, "default_mode": 0o440}}
            )
            mounts.append({"name": "client-tls", "mount_path": CLIENT_MOUNT, "read_only": True})
        container: dict[str, Any] = {
            "name": "locust",
            "image": self._image,
            "image_pull_policy": "Always",
            "command": ["/bin/sh", "-c", results_script(), "locust"],
            "args": locust_args,
            "env": env,
            "volume_mounts": mounts,
            "resources": resource_requirements(resources),
            "security_context": container_security(),
        }
        if ports:
            container["ports"] = ports
        return k8s.batch.v1.Job(
            resource_name,
            metadata={
                **self._metadata(job_name),
                # The run is awaited with kubectl wait (the outputs say how), not by pulumi up.
                "annotations": {"pulumi.com/skipAwait": "true"},
            },
            spec={
                "parallelism": parallelism,
                "completions": parallelism,
                # A worker that lost its master (or never found it) is not run again.
                "backoff_limit": 0,
                # The hard bound: the cluster ends the run's pods at this age, whatever happens.
                "active_deadline_seconds": deadline,
                "ttl_seconds_after_finished": load.results_retention_seconds,
                "template": {
                    "metadata": {"labels": dict(pod_labels)},
                    "spec": {
                        "restart_policy": "Never",
                        "service_account_name": ACCOUNT,
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "security_context": pod_security(),
                        "volumes": volumes,
                        "containers": [container],
                    },
                },
            },
            opts=opts,
        )
