"""The load generator and the reference platform's capacity.

Figures (baselines measured in the same run):
- Locust (FastHttpUser, one process, the engine of `loadtests/`) requests per second of
  generator CPU, against a plain keep-alive `http.client` loop in one process, both hitting
  the same minimal local HTTP server for the same time. CPU is the client process's own
  (user + system, from wait4), so the server's speed does not enter: the ratio says what a
  Locust request costs the generator relative to the cheapest Python client. With one core
  per generator process, requests per CPU-second is requests per second per generator core.
- `zwfw capacity` against a reference platform started for the benchmark: the highest rate
  of catalog visits (the browse journey: discovery, catalog, 办事指南) and of case submissions
  (the citizen journey: sign-in, submission with an upload, tracking, rating) that keep every
  step within the SLO profile; baseline: that journey's rate in the certification workload
  (`loadtests/profiles/certify.yaml`), so the ratio is the headroom above it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from figure import Figure

REPO = Path(__file__).resolve().parents[1]
REGION = "340000"
SECONDS = 10

SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    BODY = b'{"ok":true}'
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(BODY)).encode())]})
        await send({"type": "http.response.body", "body": BODY})
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
                access_log=False)
    """
)

RAW_CLIENT = textwrap.dedent(
    """
    import http.client, sys, time
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    connection = http.client.HTTPConnection("127.0.0.1", port)
    done, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        connection.request("GET", "/")
        connection.getresponse().read()
        done += 1
    print(done)
    """
)

LOCUSTFILE = textwrap.dedent(
    """
    from locust import FastHttpUser, constant, task

    class Client(FastHttpUser):
        wait_time = constant(0)

        @task
        def get(self):
            self.client.get("/", name="bench")
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_of(process: subprocess.Popen[str]) -> tuple[float, str]:
    """Wait for `process`; its own user + system CPU seconds, and its standard output."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    output = process.stdout.read() if process.stdout is not None else ""
    if process.returncode != 0:
        raise RuntimeError(f"{process.args!r} exited {process.returncode}: {output[-800:]}")
    return usage.ru_utime + usage.ru_stime, output


def generator_figure(work: Path) -> Figure:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.1)
        raw = subprocess.Popen([sys.executable, "-c", RAW_CLIENT, str(port), str(SECONDS)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        raw_cpu, raw_out = _cpu_of(raw)
        raw_rate = int(raw_out.split()[-1]) / raw_cpu
        locustfile = work / "bench_locustfile.py"
        locustfile.write_text(LOCUSTFILE, encoding="utf-8")
        prefix = work / "bench"
        locust = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
             "--only-summary", "-u", "10", "-r", "10", "--run-time", f"{SECONDS}s",
             "--host", f"http://127.0.0.1:{port}", "--csv", str(prefix),
             "--loglevel", "ERROR", "--exit-code-on-error", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        locust_cpu, _ = _cpu_of(locust)
        stats = (work / "bench_stats.csv").read_text(encoding="utf-8").splitlines()
        header = stats[0].split(",")
        aggregated = next(line for line in stats if ",Aggregated," in line).split(",")
        requests = int(aggregated[header.index("Request Count")])
        locust_rate = requests / locust_cpu
    finally:
        server.terminate()
        server.wait(timeout=10)
    return Figure(
        "load generator: Locust requests per generator CPU-second (one core)",
        locust_rate, "requests/CPU-s",
        "plain http.client keep-alive loop, same server, same run", raw_rate,
    )  # fmt: skip


def capacity_figures(work: Path) -> list[Figure]:
    from zwfw.harness.capacity import Plan, find_capacity
    from zwfw.harness.profile import load_profile
    from zwfw.harness.redact import Redactor
    from zwfw.harness.workload import load_workload
    from zwfw.reference import ReferencePlatform

    base = load_workload(REPO / "loadtests" / "profiles" / "certify.yaml")
    with ReferencePlatform(work / "reference") as platform:
        os.environ.update(platform.credentials(REGION))
        target = platform.profile_path(REGION)
        plan = Plan(("browse", "citizen"), start=4.0, factor=1.5, max_rate=120.0,
                    step_seconds=15.0)  # fmt: skip
        document = find_capacity(
            target, load_profile(target), base, plan, redactor=Redactor(),
            progress=lambda line: print(f"  capacity: {line}", file=sys.stderr),
        )  # fmt: skip
    names = {"browse": "catalog visits (browse journey)", "citizen": "case submissions "
             "(citizen journey)"}  # fmt: skip
    out = []
    for journey, label in names.items():
        result = document["journeys"][journey]
        highest = result["highest_sustained_per_second"] or 0.0
        bound = "" if result["measured_limit"] else " (lower bound)"
        out.append(
            Figure(
                f"reference platform: sustainable {label} per second{bound}",
                highest,
                "/s",
                f"{journey} rate of the certification workload (certify.yaml)",
                base.rate_of(journey),
            )  # fmt: skip
        )
    return out


def figures() -> list[Figure]:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        return [generator_figure(work), *capacity_figures(work)]
