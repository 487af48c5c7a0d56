"""`zwfw reference up|down --state-dir DIR`: the reference platform (``ReferencePlatform``) as
detached processes of their own.

``up`` starts a supervisor (``zwfw reference run``, in a session of its own) that starts the
platform, writes ``reference.json`` (what runs where, the target profiles and env files) and
stays until SIGTERM, then stops every service. Its PID file (``reference.pid``) is what
``down`` stops from: SIGTERM, a grace period, then SIGKILL of the supervisor and of the
service processes ``reference.json`` names, so nothing is left behind. A PID file whose
process is gone (or is not this state directory's supervisor) is stale and removed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

PID_FILE = "reference.pid"
STATE_FILE = "reference.json"
LOG_FILE = "reference.log"
DATABASES = "db"  # where the platform keeps its SQLite databases
EXIT_FAILED = 1
EXIT_USAGE = 2

reference_app = typer.Typer(
    help="The reference platform on this host: national side and provinces, detached.",
    no_args_is_help=True,
)
StateDirOption = Annotated[
    Path, typer.Option("--state-dir", metavar="DIR", help="Keys, databases, logs, PID file.")
]


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    typer.echo(f"zwfw reference: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


def parse_provinces(text: str) -> list[Any]:
    """``340000,330000`` as province specs, named from the division table."""
    from zwfw.codes import CodeError, parse_division
    from zwfw.reference.platform import ProvinceSpec

    specs = []
    for code in (c.strip() for c in text.split(",")):
        try:
            division = parse_division(code)
        except CodeError as exc:
            raise ValueError(f"--provinces: {exc}") from None
        if not code.endswith("0000"):
            raise ValueError(f"--provinces: {code} is not a province-level region code")
        specs.append(ProvinceSpec(code, division.province_name))
    if len({s.region_code for s in specs}) != len(specs):
        raise ValueError("--provinces: a region code is given twice")
    return specs


# --- the PID file --------------------------------------------------------------------------


def running_pid(state_dir: Path) -> int | None:
    """The supervisor's PID if the PID file names a live supervisor of ``state_dir``; a stale
    PID file (no such process, or another program under a reused PID) is removed."""
    path = state_dir / PID_FILE
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None
    if _is_supervisor(pid, state_dir):
        return pid
    path.unlink(missing_ok=True)
    return None


def _is_supervisor(pid: int, state_dir: Path) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process under a reused PID
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: the signal check is all there is
    if _zombie(pid):
        return False
    return b"run" in argv and str(state_dir.resolve()).encode() in argv


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return not _zombie(pid)


# --- up ------------------------------------------------------------------------------------


@reference_app.command("up")
def up(
    state_dir: StateDirOption,
    provinces: Annotated[
        str, typer.Option("--provinces", help="Province region codes, comma-separated.")
    ] = "340000,330000",
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the platform to be ready.")
    ] = 300.0,
    log_level: Annotated[str, typer.Option("--log-level", help="The services' log level.")] = (
        "WARNING"
    ),
) -> None:
    """Start the reference platform detached; print its services, URLs and provinces."""
    try:
        parse_provinces(provinces)
    except ValueError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = running_pid(state_dir)
    if pid is not None:
        raise _fail(
            f"a reference platform already runs from {state_dir} (pid {pid}); "
            f"stop it first: zwfw reference down --state-dir {state_dir}"
        )
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    # Every start makes the platform's secrets anew: the databases of an earlier start were
    # sealed under its secrets (a stored signing key would fail authentication) and go too.
    shutil.rmtree(state_dir / DATABASES, ignore_errors=True)
    zwfw = str(Path(sys.executable).with_name("zwfw"))
    with (state_dir / LOG_FILE).open("ab") as sink:
        supervisor = subprocess.Popen(
            [zwfw, "reference", "run", "--state-dir", str(state_dir), "--provinces", provinces,
             "--log-level", log_level],
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        state = _read_state(state_dir)
        if state is not None and state.get("status") == "ready":
            break
        if supervisor.poll() is not None:
            raise _fail(f"the platform did not start: {_log_tail(state_dir)}")
        time.sleep(0.2)
    else:
        _stop(state_dir, supervisor.pid, grace=20.0)
        raise _fail(f"the platform was not ready within {timeout:.0f}s: {_log_tail(state_dir)}")
    assert state is not None
    _print_state(state)


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _log_tail(state_dir: Path, lines: int = 8) -> str:
    try:
        text = (state_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(empty log)"


def _print_state(state: dict[str, Any]) -> None:
    typer.echo(f"reference platform up (pid {state['pid']}), state in {state['state_dir']}")
    for service in state["services"]:
        typer.echo(f"  {service['region']:9} {service['service']:9} {service['url']}")
    for region, province in state["provinces"].items():
        typer.echo(f"  province {region} {province['name']}: profile {province['profile']}")
        typer.echo(f"    env file {province['env_file']}")
    typer.echo(f"  what was provisioned, as a plan: {state['provisioning_plan']}")
    typer.echo(f"stop it: zwfw reference down --state-dir {state['state_dir']}")


# --- the supervisor ------------------------------------------------------------------------


@reference_app.command("run", hidden=True)
def run(
    state_dir: StateDirOption,
    provinces: Annotated[str, typer.Option("--provinces")],
    log_level: Annotated[str, typer.Option("--log-level")] = "WARNING",
) -> None:
    """The supervisor ``up`` starts: runs the platform until SIGTERM or SIGINT."""
    from zwfw.reference.platform import PlatformError, ReferencePlatform, iter_processes

    state_dir = state_dir.resolve()
    stop = threading.Event()
    starting = True

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if starting:
            # Abandons the start; ReferencePlatform.start stops what it started.
            raise PlatformError(f"stopped by signal {signum} while starting")

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stopping)
    pid_file = state_dir / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    platform = ReferencePlatform(state_dir, parse_provinces(provinces), log_level=log_level)
    try:
        platform.start()
        starting = False
        state = describe(platform)
        # Written whole, then renamed: up never reads half a file.
        partial = state_dir / (STATE_FILE + ".partial")
        partial.write_text(json.dumps(state, indent=2, ensure_ascii=False), encoding="utf-8")
        partial.replace(state_dir / STATE_FILE)
        while not stop.wait(1.0):
            dead = [p.name for p in iter_processes(platform) if not p.running]
            if dead:
                raise PlatformError(f"{', '.join(dead)} stopped unexpectedly")
    except PlatformError as exc:
        typer.echo(f"zwfw reference: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        platform.stop()
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)


def describe(platform: Any) -> dict[str, Any]:
    """What runs where: ``reference.json``."""

    def entry(region: str, process: Any) -> dict[str, Any]:
        pid = process.process.pid if process.process is not None else None
        return {"region": region, "service": process.service, "url": process.url, "pid": pid,
                "log": str(process.log)}  # fmt: skip

    services = [entry("national", p) for p in platform.national.values()]
    for region, province in platform.provinces.items():
        services += [entry(region, p) for p in province.services.values()]
    return {
        "status": "ready",
        "pid": os.getpid(),
        "state_dir": str(platform.state_dir),
        "services": services,
        "provinces": {
            region: {
                "name": province.spec.name,
                "profile": str(platform.profile_path(region)),
                "env_file": str(platform.env_path(region)),
            }
            for region, province in platform.provinces.items()
        },
        "provisioning_plan": str(platform.plan_path),
    }


# --- down ----------------------------------------------------------------------------------


@reference_app.command("down")
def down(
    state_dir: StateDirOption,
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds to wait before killing what is left.")
    ] = 60.0,
) -> None:
    """Stop the platform started from DIR (from its PID file)."""
    state_dir = state_dir.resolve()
    had_file = (state_dir / PID_FILE).exists()
    pid = running_pid(state_dir)
    if pid is None:
        if had_file:
            typer.echo(f"no reference platform runs from {state_dir}; removed a stale PID file")
        else:
            typer.echo(f"no reference platform runs from {state_dir}")
        return
    killed = _stop(state_dir, pid, grace)
    how = "killed after the grace period" if killed else "stopped"
    typer.echo(f"reference platform (pid {pid}) {how}")


def _stop(state_dir: Path, pid: int, grace: float) -> bool:
    """SIGTERM the supervisor, wait; then SIGKILL it and any service it left. True when
    something had to be killed."""
    services = [s["pid"] for s in (_read_state(state_dir) or {}).get("services", []) if s["pid"]]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    killed = False
    # Each runs in a session of its own (its PID is its process group): the group goes, with
    # any worker it forked.
    for victim in [pid, *services]:
        if _alive(victim):
            killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(victim, signal.SIGKILL)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return killed


def register(app: typer.Typer) -> None:
    app.add_typer(reference_app, name="reference")
