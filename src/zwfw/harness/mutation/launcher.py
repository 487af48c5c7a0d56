"""How a worker starts one service process: with a mutant active, or under coverage.

`ServiceProcess.start(executable, …)` runs ``executable serve TARGET --config FILE …``; a worker
writes small executables that call `mutant_main` or `traced_main` here instead of ``zwfw``.

- mutant: the process imports zwfw from the worker's mutated source copy (``PYTHONPATH``, set
  by the worker) and defines the exception cosmic-ray's ExceptionReplacer puts in ``except``
  clauses, so that a replaced handler never catches rather than failing with a NameError;
- traced: the process runs under coverage (measuring ``zwfw/services``) and labels what it
  executes with the conformance test running at the time: on SIGUSR1 it reads the test's node
  id from ``current`` in the trace directory, switches coverage's dynamic context to it and
  acknowledges in ``ack-<pid>`` (see `zwfw.harness.mutation.tracing`). Data is saved at exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from importlib.util import find_spec
from pathlib import Path
from types import FrameType

TRACE_DIR_ENV = "ZWFW_MUTATION_TRACE_DIR"
CURRENT_FILE = "current"


def _run_zwfw() -> None:
    from zwfw.cli import main

    sys.argv[0] = "zwfw"
    main()


def mutant_main() -> None:
    # Importing it installs CosmicRayTestingException in builtins, as cosmic-ray's own runs do.
    import cosmic_ray.operators.exception_replacer  # noqa: F401

    _run_zwfw()


def write_launcher(path: Path, entry: str) -> Path:
    """An executable at `path` that runs `entry` of this module with this interpreter."""
    path.write_text(
        f"#!{sys.executable}\nfrom zwfw.harness.mutation.launcher import {entry}\n{entry}()\n",
        encoding="utf-8",
    )
    path.chmod(0o755)
    return path


def services_dir() -> str:
    spec = find_spec("zwfw")
    assert spec is not None
    assert spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations))) / "services")


def traced_main() -> None:
    import coverage

    trace_dir = Path(os.environ[TRACE_DIR_ENV])
    pid = os.getpid()
    measured = coverage.Coverage(
        data_file=str(trace_dir / f"coverage-{pid}"),
        source=[services_dir()],
        config_file=False,
    )
    measured.start()

    def switch(signum: int, frame: FrameType | None) -> None:
        nodeid = (trace_dir / CURRENT_FILE).read_text(encoding="utf-8")
        measured.switch_context(nodeid)
        ack = trace_dir / f"ack-{pid}"
        ack.with_suffix(".partial").write_text(nodeid, encoding="utf-8")
        os.replace(ack.with_suffix(".partial"), ack)

    def save() -> None:
        measured.stop()
        measured.save()

    signal.signal(signal.SIGUSR1, switch)
    atexit.register(save)
    _run_zwfw()
