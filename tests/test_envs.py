"""The conda environments: every rule has one, each installs this package with its stage's extra from
pyproject.toml (python and pip from conda-forge), and that extra provides every third-party package the rule's
script imports, directly or through the hzg modules it uses.

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

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
LOCAL_RULES = {"all"}  # aggregate rules that run nothing

# import name -> PyPI distribution (when they differ)
PYPI_NAME = {"xgboost": "xgboost-cpu", "sklearn": "scikit-learn", "yaml": "pyyaml"}
NOT_THIRD_PARTY = set(sys.stdlib_module_names) | {"hzg", "snakemake", "__future__"}
PIP_SELF = re.compile(r"^\.\./\.\.\[(?P<extra>\w+)\]$")


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
            names = (
                [name]
                if name
                else re.findall(r'"(\w+)"', re.search(r"^[ \t]+name:\s*\n?([^\n]*)", body, re.M).group(1))
            )
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
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules", "--configfile", "config/ci.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {line.strip() for line in proc.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}


@cache
def env(path: Path) -> dict:
    """An env file: {'conda': {name: version}, 'pip': [entries], 'raw': parsed yaml}."""
    spec = yaml.safe_load(path.read_text())
    conda, pip = {}, []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            name, _, version = str(dep).partition("=")
            assert version, f"{path.name}: {dep!r} is not pinned (name=version)"
            conda[name.lower()] = version
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


@cache
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def extra_requirements(extra: str | None) -> set[str]:
    """PyPI names of the core dependencies and those of an extra, following hzg[...] self-references."""
    names = {Requirement(r).name.lower() for r in project()["dependencies"]}
    todo, seen = [extra] if extra else [], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for r in map(Requirement, project()["optional-dependencies"][name]):
            if r.name == "hzg":
                todo.extend(r.extras)
            else:
                names.add(r.name.lower())
    return names


def env_extra(path: Path) -> str:
    """The extra an env installs: its one pip entry `../..[extra]`."""
    spec = env(path)
    assert len(spec["pip"]) == 1, f"{path.name}: the pip section installs exactly this package: {spec['pip']}"
    m = PIP_SELF.match(spec["pip"][0])
    assert m, f"{path.name}: pip entry {spec['pip'][0]!r} is not '../..[<extra>]'"
    return m["extra"]


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
def test_env_installs_the_package_with_its_stage_extra(path):
    spec = env(path)  # asserts the conda pins
    raw = spec["raw"]
    assert raw["name"] == f"hzg-{path.stem}"
    assert raw["channels"][0] == "conda-forge" and "defaults" not in raw["channels"]
    assert spec["conda"]["python"] == "3.11" and Requirement(
        f"python{project()['requires-python']}"
    ).specifier.contains("3.11")
    assert "pip" in spec["conda"], f"{path.name}: pip itself comes from conda-forge"
    assert set(spec["conda"]) <= {"python", "pip", "cxx-compiler"}, (
        f"{path.name}: Python packages come from pyproject.toml through pip, not from conda: "
        f"{sorted(spec['conda'])}"
    )
    assert env_extra(path) == path.stem and path.stem in project()["optional-dependencies"]


def test_every_library_import_is_a_declared_dependency():
    """Every third-party package hzg imports is in pyproject.toml (not only there by way of another one)."""
    declared = extra_requirements("all")
    missing = {}
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        for name in imports_of(path, module)[1]:
            if PYPI_NAME.get(name, name).lower() not in declared:
                missing.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert not missing, (
        f"imported by the library but not in pyproject.toml's dependencies or extras: {missing}"
    )


def test_every_rule_env_provides_what_its_script_imports():
    """Each rule's script imports only what its env's extra (with the core dependencies) provides."""
    gaps = []
    for name, entry in sorted(rules().items()):
        if name in LOCAL_RULES or entry["script"] is None:
            continue
        extra = env_extra(entry["conda"])
        provided = extra_requirements(extra)
        for module, chain in sorted(third_party_imports(entry["script"]).items()):
            if PYPI_NAME.get(module, module).lower() not in provided:
                gaps.append(
                    f"rule {name}: extra [{extra}] (envs/{entry['conda'].name}) lacks "
                    f"{PYPI_NAME.get(module, module)} "
                    f"(import {module}: {' -> '.join(chain)})"
                )
    assert not gaps, "\n".join(gaps)


def test_scripts_take_the_library_from_the_installed_package():
    """No script puts src/ on sys.path: the package is installed (editable here, from the env's pip
    section)."""
    for script in sorted((REPO / "scripts").glob("*.py")):
        assert "sys.path.insert" not in script.read_text(), f"{script.name} inserts a path"


def test_import_scanner_follows_the_library_and_its_lazy_imports():
    """The scanner itself: train.py reaches torch, xgboost and sklearn through hzg.learn.training and
    hzg.learn.boosted,
    generate.py reaches pythia8mc (imported inside a function)."""
    train = third_party_imports(REPO / "scripts/train.py")
    assert {"torch", "xgboost", "sklearn", "numpy", "pandas"} <= set(train)
    assert train["xgboost"][-1] == "hzg.learn.boosted"
    generate = third_party_imports(REPO / "scripts/generate.py")
    assert {"pythia8mc", "uproot", "awkward", "vector"} <= set(generate) and "torch" not in generate
