"""The layout holds: the TLC domain and the storage import no Dagster and not each other; only the
settings read the environment; dev tooling stays out of the package and the image; no source file
grows past ~400 lines."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "taxi_assets"
MAX_LINES = 420


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("tlc", ("dagster", "dagster_", "taxi_assets.storage", "taxi_assets.defs", "taxi_assets.settings", "taxi_assets.definitions", "devtools")),
        ("storage", ("dagster", "dagster_", "taxi_assets.tlc", "taxi_assets.defs", "taxi_assets.settings", "taxi_assets.definitions", "devtools")),
    ],
)
def test_the_domain_and_the_storage_import_neither_dagster_nor_each_other(package, forbidden):
    found = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules(PACKAGE / package)
        for name in imported(path)
        if any(name == f or name.startswith(f + ".") or (f.endswith("_") and name.startswith(f)) for f in forbidden)
    }
    assert not found, sorted(found)


def test_importing_every_domain_and_storage_module_loads_no_dagster():
    names = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in ("tlc", "storage")
        for path in modules(PACKAGE / package)
    ]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_duckdb', 'dagster_gcp', 'dagster_pandas')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_only_the_settings_read_the_environment():
    readers = set()
    for path in modules(PACKAGE):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr in ("environ", "getenv"):
                readers.add(str(path.relative_to(ROOT)))
    assert readers == {"taxi_assets/settings.py"}


def test_dev_tooling_is_outside_the_package_and_the_image():
    assert not [p.name for p in modules(PACKAGE) if p.stem in ("generator", "mirror", "demo")]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY taxi_assets ./taxi_assets" in dockerfile and "devtools" not in dockerfile and "examples" not in dockerfile
    for path in modules(PACKAGE):
        assert not {n for n in imported(path) if n.split(".")[0] in ("devtools", "examples", "taxi_assets_tests")}, path


def test_no_source_file_is_longer_than_a_reader_can_hold():
    long = {
        str(path.relative_to(ROOT)): n
        for folder in ("taxi_assets", "devtools", "examples", "benchmarks")
        for path in modules(ROOT / folder)
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


@pytest.mark.parametrize(
    ("env", "loaded", "not_loaded"),
    [
        ({}, set(), {"dagster_gcp", "google.cloud.bigquery", "psycopg"}),
        ({"TAXI_WAREHOUSE": "bigquery", "TAXI_BQ_PROJECT": "taxi-assets-test"}, {"dagster_gcp"}, {"psycopg"}),
    ],
    ids=["embedded-default", "bigquery"],
)
def test_loading_the_code_location_imports_only_what_its_settings_use(env, loaded, not_loaded):
    """Every run starts a Python that loads the code location: Google's clients (~1 s of it) come
    in only when the settings use Google Cloud, psycopg only when a step connects to Postgres."""
    code = (
        "import json, sys\nfrom taxi_assets.definitions import build_definitions\n"
        "defs = build_definitions()\n"
        "print(json.dumps([sorted(defs.resources), sorted(m for m in sys.modules if m in ('dagster_gcp', 'google.cloud.bigquery', 'psycopg'))]))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TAXI_", "BIGQUERY_", "STORAGE_EMULATOR"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, check=True).stdout
    resources, imported_modules = json.loads(out)
    assert loaded <= set(imported_modules) and not (not_loaded & set(imported_modules)), out
    assert ("bigquery" in resources and "gcs" in resources) == ("TAXI_WAREHOUSE" in env), resources
