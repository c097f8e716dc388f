"""The conda environments: every rule has one, each is pinned, agrees with pyproject.toml, and provides
every third-party package the rule's script imports, directly or through the hzg modules it uses.

Imports are read from the source (AST), including the ones inside functions (the library imports torch,
xgboost, sklearn and pythia8mc lazily), and followed through hzg transitively.
"""
import ast
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
LOCAL_RULES = {"all"}  # aggregate rules that run nothing

# import name -> conda-forge package (when they differ); import name -> PyPI distribution (when they differ)
CONDA_NAME = {"torch": "pytorch", "xgboost": "py-xgboost", "sklearn": "scikit-learn", "yaml": "pyyaml"}
PYPI_NAME = {"xgboost": "xgboost-cpu", "sklearn": "scikit-learn", "yaml": "pyyaml"}
# PyPI distribution in pyproject.toml -> conda-forge package that stands for it in an env
PYPI_TO_CONDA = {"torch": "pytorch", "xgboost-cpu": "py-xgboost"}
# packages only PyPI has (installed through the env's `pip:` section)
PIP_ONLY = {"pythia8mc"}
NOT_THIRD_PARTY = set(sys.stdlib_module_names) | {"hzg", "snakemake", "__future__"}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)==?(?P<version>[0-9][A-Za-z0-9_.+!\-]*)$")


# ------------------------------------------------------------------------------------------- parsing


def rules() -> dict[str, dict]:
    """rule name -> {file, conda (absolute path or None), script (absolute path or None)} from the source.

    A rule written once in a loop over variations (`rule:` with `name: "a" if ... else "b"`) stands for every
    name its `name:` directive spells."""
    found = {}
    for path in RULE_FILES:
        text = path.read_text()
        pattern = r"^([ \t]*)(?:rule|checkpoint)\s*(\w*)\s*:[^\n]*\n((?:\1[ \t]+[^\n]*\n|[ \t]*\n)*)"
        for m in re.finditer(pattern, text, re.M):
            name, body = m.group(2), m.group(3)
            names = [name] if name else re.findall(r'"(\w+)"', re.search(r"^[ \t]+name:\s*\n?([^\n]*)", body, re.M)
                                                     .group(1))
            entry = {"file": path}
            for directive in ("conda", "script"):
                d = re.search(rf"^[ \t]+{directive}:\s*(?:\n[ \t]+)?[\"']([^\"']+)[\"']", body, re.M)
                entry[directive] = (path.parent / d.group(1)).resolve() if d else None
            for name in names:
                assert name not in found, f"rule {name} defined twice ({found[name]['file']}, {path})"
                found[name] = entry
    return found


@cache
def listed_rules() -> set[str]:
    """The rules Snakemake itself sees (for config/ci.yaml)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules", "--configfile", "config/ci.yaml"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {line.strip() for line in proc.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}


@cache
def env(path: Path) -> dict:
    """An env file: {'conda': {name: version}, 'pip': {name: version}, 'raw': parsed yaml}."""
    spec = yaml.safe_load(path.read_text())
    conda, pip = {}, {}
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            for item in dep["pip"]:
                m = PIN.match(item.replace(" ", ""))
                assert m, f"{path.name}: pip package {item!r} is not pinned (name==version)"
                pip[m["name"].lower()] = m["version"]
        else:
            m = PIN.match(str(dep).replace(" ", ""))
            assert m, f"{path.name}: {dep!r} is not pinned (name=version)"
            conda[m["name"].lower()] = m["version"]
    return {"conda": conda, "pip": pip, "raw": spec}


def module_file(module: str) -> Path | None:
    """The source file of an hzg module (package: its __init__.py)."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path, module: str | None) -> tuple[set[str], set[str]]:
    """(hzg modules, third-party top-level names) imported anywhere in a file, functions included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = None
    if module is not None:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    local, third = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            # `from hzg import io` imports the submodule hzg.io; `from hzg.x import y` imports hzg.x
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "hzg":
                if module_file(name) is not None:
                    local.add(name)
            elif top not in NOT_THIRD_PARTY:
                third.add(top)
    return local, third


def third_party_imports(script: Path) -> dict[str, list[str]]:
    """Third-party top-level import -> the chain of files that imports it, for a rule's script."""
    found: dict[str, list[str]] = {}
    local, third = imports_of(script, None)
    for name in third:
        found.setdefault(name, [script.name])
    queue = [(m, [script.name]) for m in sorted(local)]
    seen = set()
    while queue:
        module, chain = queue.pop(0)
        # importing hzg.a.b runs hzg/__init__.py and hzg/a/__init__.py too
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod in seen or module_file(mod) is None:
                continue
            seen.add(mod)
            sub_local, sub_third = imports_of(module_file(mod), mod)
            for name in sub_third:
                found.setdefault(name, chain + [mod])
            queue.extend((m, chain + [mod]) for m in sorted(sub_local))
    return found


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    reqs["python"] = Requirement(f"python{project['requires-python']}")
    return reqs


def provides(spec: dict, import_name: str) -> bool:
    if import_name in PIP_ONLY:
        return import_name in spec["pip"]
    return CONDA_NAME.get(import_name, import_name).lower() in spec["conda"]


# -------------------------------------------------------------------------------------------- tests


def test_every_rule_is_found_and_has_a_conda_env_file():
    found = rules()
    assert set(found) == listed_rules(), "the rule parser here and `snakemake --list-rules` disagree"
    for name, entry in found.items():
        if name in LOCAL_RULES:
            continue
        assert entry["conda"] is not None, f"rule {name} ({entry['file'].name}) has no conda: directive"
        assert entry["conda"].is_file(), f"rule {name}: {entry['conda']} does not exist"
        assert entry["conda"].parent == REPO / "envs", f"rule {name}: env outside envs/: {entry['conda']}"


@pytest.mark.parametrize("path", ENVS, ids=[p.name for p in ENVS])
def test_env_parses_and_every_package_is_pinned(path):
    spec = env(path)  # asserts the pins
    raw = spec["raw"]
    assert raw["name"] == f"hzg-{path.stem}"
    assert raw["channels"][0] == "conda-forge" and "defaults" not in raw["channels"]
    assert "python" in spec["conda"]
    if spec["pip"]:
        assert "pip" in spec["conda"], f"{path.name}: a pip: section needs pip itself pinned"


@pytest.mark.parametrize("path", ENVS, ids=[p.name for p in ENVS])
def test_env_versions_are_allowed_by_pyproject(path):
    reqs = pyproject_requirements()
    conda_to_pypi = {PYPI_TO_CONDA.get(name, name): name for name in reqs}
    spec = env(path)
    checked = 0
    for source in ("conda", "pip"):
        for name, version in spec[source].items():
            pypi = conda_to_pypi.get(name) if source == "conda" else name
            if pypi is None or pypi not in reqs:
                continue
            allowed = reqs[pypi].specifier
            assert allowed.contains(Version(version), prereleases=True), \
                f"{path.name}: {name}={version} is outside pyproject.toml's {pypi}{allowed}"
            checked += 1
    assert checked > 1


def test_every_library_import_is_a_declared_dependency():
    """Every third-party package hzg imports is in pyproject.toml (not only there by way of another one)."""
    reqs = pyproject_requirements()
    missing = {}
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        for name in imports_of(path, module)[1]:
            if PYPI_NAME.get(name, name).lower() not in reqs:
                missing.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert not missing, f"imported by the library but not in pyproject.toml dependencies: {missing}"


def test_every_rule_env_provides_what_its_script_imports():
    gaps = []
    for name, entry in sorted(rules().items()):
        if name in LOCAL_RULES or entry["script"] is None:
            continue
        spec = env(entry["conda"])
        for module, chain in sorted(third_party_imports(entry["script"]).items()):
            if not provides(spec, module):
                package = module if module in PIP_ONLY else CONDA_NAME.get(module, module)
                gaps.append(f"rule {name}: envs/{entry['conda'].name} lacks {package} "
                            f"(import {module}: {' -> '.join(chain)})")
    assert not gaps, "\n".join(gaps)


def test_import_scanner_follows_the_library_and_its_lazy_imports():
    """The scanner itself: train.py reaches torch, xgboost and sklearn through hzg.learn.training and hzg.learn.boosted,
    generate.py reaches pythia8mc (imported inside a function)."""
    train = third_party_imports(REPO / "scripts/train.py")
    assert {"torch", "xgboost", "sklearn", "numpy", "pandas"} <= set(train)
    assert train["xgboost"][-1] == "hzg.learn.boosted"
    generate = third_party_imports(REPO / "scripts/generate.py")
    assert {"pythia8mc", "uproot", "awkward", "vector"} <= set(generate) and "torch" not in generate
