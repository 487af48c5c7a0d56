"""Schema checks of rendered objects, as strict as the API server's field validation:

- built-in kinds with kubernetes-validate (``--strict``: unknown fields are errors) for each
  Kubernetes version the target supports;
- custom resources against the CRD schemas of the pinned operator releases (charts/crds),
  with unknown fields refused wherever the schema does not preserve them.

    python -m zwfw_infra.validation out/k8s/demo      # exit 1 and one line per error
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from zwfw_infra.paths import CRDS

# kubernetes-validate reads its (large) schema files on every call; they never change.
if not hasattr(kubernetes_validate.utils.schema_contents, "cache_info"):
    kubernetes_validate.utils.schema_contents = cache(kubernetes_validate.utils.schema_contents)

# The Kubernetes versions the target supports (and the pinned kubernetes-validate knows).
KUBERNETES_VERSIONS = ("1.31.0", "1.32.0", "1.33.0", "1.34.0")


def _strict(schema: Any) -> Any:
    """The CRD's structural schema with unknown fields refused (the API server prunes or,
    with strict field validation, rejects them)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → strict schema of every served version of the vendored CRDs."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*/*.yaml")):
        if path.name == "SOURCES.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            spec = document["spec"]
            for version in spec["versions"]:
                if not version.get("served"):
                    continue
                schema = dict(version["schema"]["openAPIV3Schema"])
                # metadata is the API server's ObjectMeta, checked by it, not by the CRD.
                properties = dict(schema.get("properties") or {})
                properties["metadata"] = {"type": "object"}
                schema["properties"] = properties
                schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = _strict(
                    schema
                )
    return schemas


def custom_resource_errors(obj: Mapping[str, Any]) -> list[str] | None:
    """Errors of a custom resource against its CRD; None when no vendored CRD has the kind."""
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        return None
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]


def builtin_errors(obj: Mapping[str, Any], version: str) -> list[str] | None:
    """kubernetes-validate --strict for one version; None when it has no schema of the kind."""
    try:
        kubernetes_validate.validate(dict(obj), version, strict=True)
    except SchemaNotFoundError:
        return None
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(p) for p in error.path) or "(top)"
        return [f"{where}: {error.message}"]
    return []


def errors(obj: Mapping[str, Any], versions: Iterable[str] = KUBERNETES_VERSIONS) -> list[str]:
    """Every problem of one object: unknown kind, schema errors per version."""
    meta = obj.get("metadata") or {}
    name = f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"
    custom = custom_resource_errors(obj)
    if custom is not None:
        return [f"{name}: {e}" for e in custom]
    found: list[str] = []
    for version in versions:
        result = builtin_errors(obj, version)
        if result is None:
            return [
                f"{name}: no schema for {obj['apiVersion']} {obj['kind']} (Kubernetes {version})"
            ]
        found += [f"{name} (Kubernetes {version}): {e}" for e in result]
    return found


def main(argv: list[str] | None = None) -> int:
    folders = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    if not folders:
        print("usage: python -m zwfw_infra.validation DIR...", file=sys.stderr)
        return 2
    problems = 0
    checked = 0
    for folder in folders:
        for path in sorted(folder.rglob("*.yaml")):
            if path.name == "helm-releases.yaml":
                continue
            for obj in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                checked += 1
                for problem in errors(obj):
                    problems += 1
                    print(f"{path}: {problem}")
    print(f"{checked} objects checked, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
