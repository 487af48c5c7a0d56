"""Static checks of a deployment (`zwfw security static`): what the playbooks left on a host,
judged without sending a request.

- SEC-DEP-001: private keys, key-encryption keys, settings and env files holding secrets under
  the deployment's state directory are readable by their owner only, and owned by the service
  user (the owner of the state directory unless told otherwise).
- SEC-DEP-002: the processes of the deployment (the services' supervisord, the monitoring
  supervisord, the nginx gateway, and everything they started) listen on the ports and
  addresses their rendered configuration declares, and on nothing else.
- SEC-DEP-003: the rendered nginx gateway configuration: TLS 1.2+ only, no weak cipher suite,
  HSTS on every TLS server, server_tokens off, client_max_body_size set.
- SEC-DEP-004: ansible-lint (production profile) over the playbooks; SEC-DEP-005: checkov over
  the Kubernetes target's rendered manifests.

Findings are written as SARIF 2.1.0 for code-scanning tools (`security.sarif`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml

from zwfw import __version__

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/zwfw/zwfw/blob/main/security/README.md"

# Each check: requirement, title (the SARIF rule's short description).
CHECKS = {
    "SEC-DEP-001": "Deployed keys and secrets are readable by the service user only",
    "SEC-DEP-002": "The deployment's processes listen on the declared ports only",
    "SEC-DEP-003": "The nginx gateway is configured for TLS 1.2+, strong suites and HSTS",
    "SEC-DEP-004": "The playbooks pass ansible-lint (production profile)",
    "SEC-DEP-005": "The rendered Kubernetes manifests pass checkov",
}

# HSTS max-age the transport requirements ask for (SEC-TLS-005): 182 days.
HSTS_MIN_AGE = 15724800


class StaticCheckError(Exception):
    """Bad input: the one-line message the command prints before exiting 2."""


@dataclass(frozen=True)
class Finding:
    requirement: str
    failure_mode: str
    message: str
    path: str | None = None
    line: int | None = None

    @property
    def rule(self) -> str:
        return f"{self.requirement}/{self.failure_mode}"


@dataclass
class CheckResult:
    """One check's outcome: findings, or why it could not judge anything (never a pass)."""

    requirement: str
    findings: list[Finding] = field(default_factory=list)
    not_checked: str | None = None
    checked: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.not_checked is not None:
            return "not checked"
        return "findings" if self.findings else "passed"


# --- SEC-DEP-001: file modes and owners of secrets ------------------------------------------

# Files that hold secrets by their name; PEM files are judged by their content.
_SECRET_NAMES = re.compile(r"(^|[-_.])(key|kek|secret|password)s?([-_.]|$)|\.jwk$|\.env$")
_SECRET_FILES = {"material.json"}
# Directories whose every file is a secret, and settings directories (their files carry data
# keys and database passwords).
_SECRET_DIRS = {"secrets"}
_SETTINGS_DIRS = {"etc"}
# Bulk data the playbooks never put secrets in; walking it would only cost time.
_SKIP_DIRS = {"data", "log", "tmp", "alertmanager", "__pycache__"}


def _is_secret(path: Path, state: Path) -> bool:
    parts = path.relative_to(state).parts
    if any(part in _SECRET_DIRS for part in parts[:-1]):
        return True
    if len(parts) >= 2 and parts[-2] in _SETTINGS_DIRS and path.suffix in {".yaml", ".yml"}:
        return True
    if path.name in _SECRET_FILES:
        return True
    if path.suffix == ".pem":
        with path.open("rb") as handle:
            return b"PRIVATE KEY-----" in handle.read(8192)
    return bool(_SECRET_NAMES.search(path.name)) and path.suffix not in {".pub", ".crt"}


def _walk_files(state: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(state):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _uid_of(user: str) -> int:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError as error:
        raise StaticCheckError(f"--service-user {user}: no such user on this host") from error


def check_secret_files(state: Path, service_user: str | None = None) -> CheckResult:
    """Every secret file under ``state``: no group or other permission bits, owned by the
    service user (default: the state directory's owner, as the hardening role sets it)."""
    result = CheckResult("SEC-DEP-001")
    owner = _uid_of(service_user) if service_user else state.stat().st_uid
    for path in _walk_files(state):
        try:
            if not _is_secret(path, state):
                continue
            info = path.stat()
        except OSError as error:
            result.findings.append(
                Finding("SEC-DEP-001", "secret-unreadable", f"cannot inspect {path}: {error}",
                        str(path))
            )  # fmt: skip
            continue
        result.checked.append(str(path))
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            result.findings.append(
                Finding(
                    "SEC-DEP-001",
                    "secret-readable-by-others",
                    f"{path.relative_to(state)} has mode {mode:04o}: a secret must be 0600 "
                    "(or 0400), never readable or writable by group or others",
                    str(path),
                )
            )
        if info.st_uid != owner:
            result.findings.append(
                Finding(
                    "SEC-DEP-001",
                    "secret-wrong-owner",
                    f"{path.relative_to(state)} is owned by {_user_name(info.st_uid)}, not by "
                    f"the service user {_user_name(owner)}",
                    str(path),
                )
            )
    if not result.checked:
        result.not_checked = f"no key or secret file under {state}"
    return result


# --- SEC-DEP-002: listening ports ------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    address: str
    port: int


@dataclass
class ProcessGroup:
    """A process the deployment started (from its pid file), its descendants, and the
    listeners its configuration declares."""

    name: str
    pid_file: Path
    config: Path
    declared: set[Listener]


_WILDCARDS = {"0.0.0.0", "::", "*", ""}


def _hex_address(text: str) -> Listener:
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    if len(raw) == 4:
        host = ".".join(str(b) for b in reversed(raw))
    else:
        # /proc/net/tcp6 stores each 32-bit word in host (little-endian) order.
        words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
        import ipaddress

        host = str(ipaddress.IPv6Address(b"".join(words)))
        mapped = ipaddress.IPv6Address(host).ipv4_mapped
        host = str(mapped) if mapped else host
    return Listener(host, int(port, 16))


def listening_sockets(proc: Path = Path("/proc")) -> dict[int, Listener]:
    """Socket inode -> listener, for every TCP socket in LISTEN state on this host."""
    sockets: dict[int, Listener] = {}
    for table in ("tcp", "tcp6"):
        path = proc / "net" / table
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A":  # TCP_LISTEN
                sockets[int(fields[9])] = _hex_address(fields[1])
    return sockets


def _children(proc: Path) -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its end.
        parent = int(text[text.rindex(")") + 2 :].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _descendants(pid: int, tree: dict[int, list[int]]) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(tree.get(current, []))
    return found


def _socket_inodes(pid: int, proc: Path) -> set[int]:
    inodes = set()
    for fd in (proc / str(pid) / "fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _supervisord_programs(conf: Path) -> list[tuple[str, str]]:
    """(program, command) of every [program:x] section."""
    programs, current = [], None
    for line in conf.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[program:"):
            current = line[len("[program:") : -1]
        elif line.startswith("["):
            current = None
        elif current and line.startswith("command="):
            programs.append((current, line[len("command=") :]))
    return programs


def _option(argv: list[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def _split_address(text: str) -> Listener:
    host, _, port = text.rpartition(":")
    return Listener(host.strip("[]"), int(port))


def _declared_by_supervisord(conf: Path) -> set[Listener]:
    declared = set()
    for _, command in _supervisord_programs(conf):
        argv = shlex.split(command)
        port, settings = _option(argv, "--port"), _option(argv, "--config")
        if port is not None:
            host = "0.0.0.0"
            if settings and Path(settings).exists():
                loaded = yaml.safe_load(Path(settings).read_text(encoding="utf-8")) or {}
                host = str(loaded.get("host", host))
            declared.add(Listener(host, int(port)))
        for flag in ("--web.listen-address", "--cluster.listen-address"):
            address = _option(argv, flag)
            if address:
                declared.add(_split_address(address))
    return declared


def _declared_by_nginx(conf: Path) -> set[Listener]:
    declared = set()
    for directive in parse_nginx(conf.read_text(encoding="utf-8")):
        if directive.name == "listen" and directive.args:
            where = directive.args[0]
            declared.add(
                Listener("0.0.0.0", int(where)) if where.isdigit() else _split_address(where)
            )
    return declared


def deployment_processes(state: Path) -> list[ProcessGroup]:
    """The process groups the playbooks start under ``state`` (those whose files exist)."""
    groups = []
    for name, pid_file, config in (
        ("services", state / "run" / "supervisord.pid", state / "etc" / "supervisord.conf"),
        (
            "monitoring",
            state / "monitoring" / "run" / "supervisord.pid",
            state / "monitoring" / "supervisord.conf",
        ),
        ("gateway", state / "gateway" / "nginx.pid", state / "gateway" / "nginx.conf"),
    ):
        if config.exists():
            declared = (
                _declared_by_nginx(config)
                if name == "gateway"
                else _declared_by_supervisord(config)
            )
            groups.append(ProcessGroup(name, pid_file, config, declared))
    return groups


def _covers(declared: set[Listener], actual: Listener) -> bool:
    for listener in declared:
        if listener.port != actual.port:
            continue
        if listener.address in _WILDCARDS or listener.address == actual.address:
            return True
    return False


def check_listening_ports(state: Path, proc: Path = Path("/proc")) -> CheckResult:
    """Every TCP listener of the deployment's running processes is declared by its rendered
    configuration, on the declared address (a wildcard where one address was declared is a
    finding: the port is reachable from every network the host is on)."""
    result = CheckResult("SEC-DEP-002")
    groups = deployment_processes(state)
    if not groups:
        result.not_checked = f"no supervisord or nginx configuration under {state}"
        return result
    sockets = listening_sockets(proc)
    tree = _children(proc)
    running = 0
    for group in groups:
        try:
            root = int(group.pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if not (proc / str(root)).exists():
            continue
        running += 1
        seen: set[Listener] = set()
        for pid in _descendants(root, tree):
            try:
                inodes = _socket_inodes(pid, proc)
            except PermissionError:
                result.not_checked = (
                    f"cannot read the sockets of process {pid} ({group.name}): run as the "
                    "service user or root"
                )
                return result
            except OSError:
                continue  # exited meanwhile
            seen |= {sockets[inode] for inode in inodes if inode in sockets}
        result.checked.append(f"{group.name} (pid {root}): {len(seen)} listeners")
        for listener in sorted(seen, key=lambda item: (item.port, item.address)):
            if _covers(group.declared, listener):
                continue
            same_port = any(d.port == listener.port for d in group.declared)
            result.findings.append(
                Finding(
                    "SEC-DEP-002",
                    "wider-address" if same_port else "undeclared-port",
                    f"{group.name} listens on {listener.address}:{listener.port}, which "
                    + (
                        "is wider than the declared address"
                        if same_port
                        else f"{group.config.relative_to(state)} does not declare"
                    ),
                    str(group.config),
                )
            )
    if not running:
        result.not_checked = f"no process of the deployment under {state} is running"
    return result


# --- SEC-DEP-003: the nginx gateway configuration ------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    line: int
    block: list[Directive] | None = None


def _tokens(text: str) -> Iterator[tuple[str, int]]:
    pattern = re.compile(
        r"""\s+|#[^\n]*|"((?:\\.|[^"\\])*)"|'((?:\\.|[^'\\])*)'|([{};])|([^\s{};"'#]+)"""
    )
    line = 1
    for match in pattern.finditer(text):
        token = match.group(0)
        if match.group(1) is not None or match.group(2) is not None:
            yield (match.group(1) if match.group(1) is not None else match.group(2)), line
        elif match.group(3) or match.group(4):
            yield token, line
        line += token.count("\n")


def parse_nginx(text: str) -> list[Directive]:
    """Directives of an nginx configuration, nested blocks included, flattened in order."""
    stack: list[list[Directive]] = [[]]
    words: list[str] = []
    start = 0
    for token, line in _tokens(text):
        if token in {";", "{"}:
            if not words:
                raise StaticCheckError(f"nginx configuration: stray '{token}' at line {line}")
            directive = Directive(words[0], words[1:], start)
            stack[-1].append(directive)
            if token == "{":
                directive.block = []
                stack.append(directive.block)
            words = []
        elif token == "}":
            if len(stack) == 1 or words:
                raise StaticCheckError(f"nginx configuration: unbalanced '}}' at line {line}")
            stack.pop()
        else:
            if not words:
                start = line
            words.append(token)
    if len(stack) != 1 or words:
        raise StaticCheckError("nginx configuration: unterminated block or directive")
    return list(_flatten(stack[0]))


def _flatten(directives: list[Directive]) -> Iterator[Directive]:
    for directive in directives:
        yield directive
        if directive.block is not None:
            yield from _flatten(directive.block)


def _find(block: list[Directive] | None, name: str) -> list[Directive]:
    return [d for d in block or [] if d.name == name]


def _top(text: str) -> list[Directive]:
    """The unflattened tree: parse_nginx's first-level directives keep their blocks."""
    flat = parse_nginx(text)
    nested = {id(child) for d in flat if d.block for child in d.block}
    return [d for d in flat if id(d) not in nested]


# Cipher-string elements that enable a weak suite: anonymous, export, NULL, RC4, DES/3DES, MD5,
# and CBC suites with a SHA-1 MAC (OpenSSL names ending in -SHA), plus aliases that include them.
_WEAK_CIPHER = re.compile(
    r"(^|[-+])(RC4|DES|3DES|MD5|NULL|EXP|EXPORT|ADH|AECDH|aNULL|eNULL|anon|PSK|SEED|IDEA)($|[-+])"
    r"|-SHA$|^(ALL|DEFAULT|HIGH|MEDIUM|LOW|COMPLEMENTOFALL|COMPLEMENTOFDEFAULT|SHA1?|kRSA|RSA)$"
)
# nginx's default when ssl_ciphers is absent ("HIGH:!aNULL:!MD5") admits CBC-SHA1 suites.
_NGINX_DEFAULT_CIPHERS = "HIGH:!aNULL:!MD5"


def _weak_ciphers(value: str) -> list[str]:
    return [
        element
        for element in re.split(r"[:, ]+", value)
        if element and element[0] not in "!-" and _WEAK_CIPHER.search(element.lstrip("+"))
    ]


def _hsts_age(directive: Directive) -> int | None:
    if len(directive.args) < 2 or directive.args[0].lower() != "strict-transport-security":
        return None
    match = re.search(r"max-age=(\d+)", directive.args[1])
    return int(match.group(1)) if match else 0


def check_gateway_config(conf: Path) -> CheckResult:
    """The rendered nginx configuration of the gateway."""
    result = CheckResult("SEC-DEP-003")
    if not conf.exists():
        result.not_checked = f"no gateway configuration at {conf}"
        return result
    result.checked.append(str(conf))
    top = _top(conf.read_text(encoding="utf-8"))
    https = _find(top, "http")
    if not https:
        result.not_checked = f"{conf} has no http block"
        return result
    http_block = https[0].block

    def finding(mode: str, message: str, line: int | None) -> None:
        result.findings.append(Finding("SEC-DEP-003", mode, message, str(conf), line))

    def inherited(block: list[Directive] | None, name: str) -> list[Directive]:
        return _find(block, name) or _find(http_block, name)

    tokens = inherited(None, "server_tokens")
    if not tokens or tokens[-1].args[:1] != ["off"]:
        finding(
            "server-tokens-on",
            "server_tokens is not off: every answer names the nginx version",
            tokens[-1].line if tokens else https[0].line,
        )
    if not _find(http_block, "client_max_body_size"):
        finding(
            "body-size-unbounded",
            "client_max_body_size is not set in the http block: nginx's 1 MiB default is "
            "implicit, and no limit is declared for uploads",
            https[0].line,
        )
    servers = _find(http_block, "server")
    for server in servers:
        listens = _find(server.block, "listen")
        if not any("ssl" in d.args[1:] for d in listens) and not _find(server.block, "ssl"):
            continue
        where = f"server at line {server.line}"
        protocols = inherited(server.block, "ssl_protocols")
        offered = protocols[-1].args if protocols else ["TLSv1.2", "TLSv1.3"]
        legacy = [p for p in offered if p not in {"TLSv1.2", "TLSv1.3"}]
        if legacy:
            finding(
                "legacy-protocol",
                f"{where}: ssl_protocols enables {' '.join(legacy)} (TLS 1.2+ only)",
                protocols[-1].line,
            )
        ciphers = inherited(server.block, "ssl_ciphers")
        cipher_value = ciphers[-1].args[0] if ciphers and ciphers[-1].args else None
        weak = _weak_ciphers(cipher_value or _NGINX_DEFAULT_CIPHERS)
        if weak and "TLSv1.2" in offered:
            finding(
                "weak-cipher",
                f"{where}: ssl_ciphers "
                + (f"admits {', '.join(weak)}" if ciphers else "is not set (nginx's default "
                   "admits CBC suites with SHA-1)"),
                ciphers[-1].line if ciphers else server.line,
            )  # fmt: skip
        # add_header is inherited from the http block only when the server sets none.
        headers = _find(server.block, "add_header") or _find(http_block, "add_header")
        ages = [age for d in headers if (age := _hsts_age(d)) is not None]
        if not ages:
            finding("hsts-missing", f"{where}: no Strict-Transport-Security header", server.line)
        elif max(ages) < HSTS_MIN_AGE:
            finding(
                "hsts-missing",
                f"{where}: Strict-Transport-Security max-age {max(ages)} is below "
                f"{HSTS_MIN_AGE} (182 days)",
                server.line,
            )
    return result


# --- SEC-DEP-004 / SEC-DEP-005: ansible-lint and checkov -------------------------------------


def _run(argv: list[str], cwd: Path | None = None, timeout: int = 900) -> str:
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as error:
        raise StaticCheckError(f"{argv[0]} is not installed") from error
    except subprocess.TimeoutExpired as error:
        raise StaticCheckError(f"{Path(argv[0]).name} took longer than {timeout} s") from error
    return done.stdout


def check_ansible_lint(playbooks: Path, ansible_lint: str) -> CheckResult:
    """ansible-lint's production profile over the playbooks (its codeclimate JSON)."""
    # The playbooks at the top of the directory, named: given none, ansible-lint lints the
    # whole git checkout it sits in (charts, workflows), which is not the deployment code.
    entries = sorted(p.name for p in playbooks.iterdir() if p.suffix in {".yml", ".yaml"})
    if not entries:
        raise StaticCheckError(f"--playbooks {playbooks}: no playbook (*.yml) in it")
    result = CheckResult("SEC-DEP-004", checked=[str(playbooks / name) for name in entries])
    out = _run(
        [ansible_lint, "--profile", "production", "--offline", "--nocolor",
         "-f", "codeclimate", *entries],
        cwd=playbooks,
    )  # fmt: skip
    try:
        issues = json.loads(out or "[]")
    except json.JSONDecodeError as error:
        raise StaticCheckError(f"ansible-lint gave no JSON report: {out[:200]!r}") from error
    for issue in issues:
        location = issue.get("location", {})
        lines = location.get("lines", {}) or location.get("positions", {}).get("begin", {})
        line = lines.get("begin", lines.get("line"))
        path = location.get("path")
        result.findings.append(
            Finding(
                "SEC-DEP-004",
                "ansible-lint",
                f"{issue.get('check_name', 'ansible-lint')}: {issue.get('description', '')}",
                str(playbooks / path) if path else None,
                line if isinstance(line, int) else None,
            )
        )
    return result


def check_checkov(manifests: Path, checkov: str, config: Path | None = None) -> CheckResult:
    """checkov's Kubernetes checks over the rendered manifests (its JSON report)."""
    result = CheckResult("SEC-DEP-005", checked=[str(manifests)])
    argv = [checkov, "--framework", "kubernetes", "-d", str(manifests), "-o", "json"]
    if config is not None:
        argv[1:1] = ["--config-file", str(config)]
    out = _run(argv)
    try:
        report = json.loads(out) if out.strip() else {}
    except json.JSONDecodeError as error:
        raise StaticCheckError(f"checkov gave no JSON report: {out[:200]!r}") from error
    reports = report if isinstance(report, list) else [report]
    for one in reports:
        for failed in one.get("results", {}).get("failed_checks", []):
            line_range = failed.get("file_line_range") or [None]
            file_path = failed.get("file_abs_path") or failed.get("file_path")
            result.findings.append(
                Finding(
                    "SEC-DEP-005",
                    "checkov",
                    f"{failed.get('check_id')}: {failed.get('check_name')} "
                    f"({failed.get('resource')})",
                    file_path,
                    line_range[0] if isinstance(line_range[0], int) else None,
                )
            )
    return result


# --- SARIF and the summary ----------------------------------------------------------------


def _uri(path: str) -> str:
    return Path(path).resolve().as_uri() if path.startswith("/") else path


def sarif(results: list[CheckResult]) -> dict[str, Any]:
    """One SARIF 2.1.0 run: a rule per failure mode found, a result per finding; checks that
    could not judge are notifications of the invocation, never silent."""
    findings = [f for r in results for f in r.findings]
    rules = sorted({f.rule for f in findings})
    sarif_results = []
    for finding in findings:
        entry: dict[str, Any] = {
            "ruleId": finding.rule,
            "ruleIndex": rules.index(finding.rule),
            "level": "error",
            "message": {"text": finding.message},
        }
        if finding.path:
            physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(finding.path)}}
            if finding.line:
                physical["region"] = {"startLine": finding.line}
            entry["locations"] = [{"physicalLocation": physical}]
        sarif_results.append(entry)
    notes = [
        {"level": "warning", "message": {"text": f"{r.requirement} not checked: {r.not_checked}"}}
        for r in results
        if r.not_checked
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "zwfw security static",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [
                            {
                                "id": rule,
                                "name": rule.split("/", 1)[1],
                                "shortDescription": {"text": CHECKS[rule.split("/", 1)[0]]},
                                "properties": {"requirement": rule.split("/", 1)[0]},
                            }
                            for rule in rules
                        ],
                    }
                },
                "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notes}],
                "results": sarif_results,
                # What each check looked at: a run without findings says what it covered.
                "properties": {
                    "checked": {r.requirement: r.checked for r in results if not r.not_checked}
                },
            }
        ],
    }


def summary(results: list[CheckResult]) -> str:
    lines = []
    for result in results:
        head = f"{result.requirement} {CHECKS[result.requirement]}: {result.verdict}"
        if result.not_checked:
            head += f" ({result.not_checked})"
        elif result.findings:
            head += f" ({len(result.findings)})"
        lines.append(head)
        if result.checked and not result.not_checked:
            what = (
                "; ".join(result.checked)
                if len(result.checked) <= 5
                else f"{len(result.checked)} files"
            )
            lines.append(f"  checked: {what}")
        lines.extend(f"  - {finding.message}" for finding in result.findings)
    total = sum(len(r.findings) for r in results)
    lines.append(f"{total} finding{'s' if total != 1 else ''}")
    return "\n".join(lines) + "\n"


# --- Running the checks ------------------------------------------------------------------

CHECKOV_ENV = "ZWFW_CHECKOV"
CHECKOV_VENV = ".venv-checkov"


def _checkout() -> Path | None:
    from zwfw.harness.errors import HarnessConfigError
    from zwfw.harness.requirements import conformance_dir

    try:
        return conformance_dir().parent
    except HarnessConfigError:
        return None


def find_ansible_lint() -> str | None:
    """ansible-lint next to this interpreter (the project's venv), else on PATH."""
    import shutil
    import sys

    local = Path(sys.executable).parent / "ansible-lint"
    return str(local) if local.is_file() else shutil.which("ansible-lint")


def find_checkov() -> str | None:
    """The checkov command: `$ZWFW_CHECKOV`, the checkout's `.venv-checkov` (`make checkov`),
    else `checkov` on PATH."""
    import shutil

    override = os.environ.get(CHECKOV_ENV)
    if override:
        return override
    checkout = _checkout()
    if checkout is not None and (checkout / CHECKOV_VENV / "bin" / "checkov").is_file():
        return str(checkout / CHECKOV_VENV / "bin" / "checkov")
    return shutil.which("checkov")


def run_static_checks(
    state: Path | None = None,
    *,
    service_user: str | None = None,
    playbooks: Path | None = None,
    manifests: Path | None = None,
) -> list[CheckResult]:
    """The checks the inputs allow, in requirement order; bad input raises StaticCheckError."""
    if state is None and playbooks is None and manifests is None:
        raise StaticCheckError("nothing to check: give --state, --playbooks or --manifests")
    for option, directory in (
        ("--state", state),
        ("--playbooks", playbooks),
        ("--manifests", manifests),
    ):
        if directory is not None and not directory.is_dir():
            raise StaticCheckError(f"{option} {directory}: not a directory")
    results = []
    if state is not None:
        results.append(check_secret_files(state, service_user))
        results.append(check_listening_ports(state))
        results.append(check_gateway_config(state / "gateway" / "nginx.conf"))
    if playbooks is not None:
        ansible_lint = find_ansible_lint()
        if ansible_lint is None:
            raise StaticCheckError("ansible-lint is not installed: pip install -e '.[dev]'")
        results.append(check_ansible_lint(playbooks, ansible_lint))
    if manifests is not None:
        checkov = find_checkov()
        if checkov is None:
            raise StaticCheckError(f"checkov is not installed: make checkov, or set {CHECKOV_ENV}")
        checkout = _checkout()
        config = checkout / "infra" / "checkov.yaml" if checkout else None
        results.append(
            check_checkov(manifests, checkov, config if config and config.exists() else None)
        )
    return results


def write_reports(results: list[CheckResult], out: Path) -> tuple[Path, str]:
    """``out``/security.sarif and ``out``/security-summary.txt; returns the SARIF path and the
    summary."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / "security.sarif"
    target.write_text(json.dumps(sarif(results), indent=2, ensure_ascii=False) + "\n")
    text = summary(results)
    (out / "security-summary.txt").write_text(text, encoding="utf-8")
    return target, text


def static_command(
    out: Path = typer.Option(..., "--out", help="Directory for security.sarif and the summary."),
    state: Path | None = typer.Option(
        None, "--state", help="A deployment's state directory (zwfw_state_dir of the playbooks)."
    ),
    service_user: str | None = typer.Option(
        None, "--service-user", help="Owner the secrets must have (default: the state dir's)."
    ),
    playbooks: Path | None = typer.Option(
        None, "--playbooks", help="Run ansible-lint (production profile) over this directory."
    ),
    manifests: Path | None = typer.Option(
        None, "--manifests", help="Run checkov over these rendered Kubernetes manifests."
    ),
) -> None:
    """Static checks of a deployment: secrets' modes and owners, listening ports, the nginx
    gateway, ansible-lint and checkov. Writes security.sarif (SARIF 2.1.0) and a summary; exit
    1 on findings, 2 on bad input."""
    try:
        results = run_static_checks(
            state, service_user=service_user, playbooks=playbooks, manifests=manifests
        )
        target, text = write_reports(results, out)
    except (StaticCheckError, OSError) as error:
        typer.echo(f"zwfw security static: error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(text, nl=False)
    typer.echo(f"SARIF: {target}")
    raise typer.Exit(1 if any(r.findings for r in results) else 0)


security_app = typer.Typer(
    name="security",
    help="Security review of a deployment (the security suite runs under `zwfw certify`).",
    no_args_is_help=True,
)
security_app.command("static")(static_command)
