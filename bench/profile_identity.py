"""Profile the identity service under client-credential grant load, as `bench_identity` runs it.

Starts the benchmark's one-worker server, keeps three clients granting for SECONDS, samples the
server process with py-spy (not a project dependency: pass its path or have it on PATH) and
prints the top entries, by own time and by inclusive time, of the samples in which a thread was
working. Also prints the grant rate and the server's CPU time per grant.

    .venv/bin/python bench/profile_identity.py [--seconds 10] [--py-spy PATH] [--top 12]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from joserfc.jwk import ECKey

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_identity as bench  # noqa: E402

# Frames where a thread only waits: the event loop's poll (uvloop is native, so its poll shows
# as its Python caller) and idle thread-pool workers.
_WAITING = ("Runner.run (asyncio/runners.py", "Condition.wait (threading.py", "WorkerThread.run")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarise(raw: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [re.sub(r":\d+\)", ")", frame) for frame in stack.split(";")]
        if any(frames[-1].startswith(w) for w in _WAITING):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"working samples: {total}", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("inclusive time (below the request handler):")
    skip = re.compile(r"threading\.py|anyio/|runners\.py|typer|click|uvicorn/(main|server|_compat)")
    shown = [(f, n) for f, n in inclusive.most_common() if not skip.search(f)]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in shown[:top]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--py-spy", default=shutil.which("py-spy"))
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    if not args.py_spy:
        print("profile_identity: py-spy not found; pass --py-spy PATH", file=sys.stderr)
        return 2
    key = ECKey.generate_key("P-256", parameters={"kid": "bench-1"})
    with tempfile.TemporaryDirectory() as tmp:
        process, url = bench._server(Path(tmp), key)
        raw = Path(tmp) / "samples.txt"
        try:

            def grant(client: httpx.Client) -> None:
                response = client.post(
                    "/token",
                    data={
                        "grant_type": "client_credentials",
                        "scope": "hub:sync",
                        "client_assertion_type": bench.ASSERTION,
                        "client_assertion": bench._assertion(key, url + "/token"),
                    },
                )
                assert response.status_code == 200, response.text

            bench.SECONDS = args.seconds
            spy = subprocess.Popen(
                [args.py_spy, "record", "-p", str(process.pid), "-d", str(int(args.seconds)),
                 "-r", "200", "-f", "raw", "-o", str(raw), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            cpu_before, started = _cpu_seconds(process.pid), time.perf_counter()
            rate = bench._load(grant, url)
            cpu = _cpu_seconds(process.pid) - cpu_before
            elapsed = time.perf_counter() - started
            spy.wait()
        finally:
            process.terminate()
            process.wait(timeout=15)
        print(
            f"grants/s {rate:.1f}; server CPU {100 * cpu / elapsed:.0f}% of one core, "
            f"{1000 * cpu / (rate * elapsed):.2f} ms per grant"
        )
        print(summarise(raw, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
