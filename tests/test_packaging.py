"""The wheel: one import namespace (croupier), its data files, and console scripts that
resolve inside it. bench/ and tests/ are development-only and stay out of it."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("router", "variants", "scripts", "nginx")  # installed as croupier.<folder>
# data files each package needs at run time: (folder, glob)
DATA = [("router", "lua/*.lua"), ("router", "templates/*"), ("router", "static/*"),
        ("variants", "templates/*"), ("variants", "examples/**/*"), ("nginx", "*.j2"),
        ("scripts", "templates/*")]
TOP_JUNK = {".git", ".venv", "venv", "run", "build", "dist", ".pytest_cache", ".hypothesis", "node_modules"}


def junk(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: local state at the top, caches and build metadata anywhere."""
    top = Path(folder) == ROOT
    return {n for n in names if (top and n in TOP_JUNK) or n == "__pycache__" or n.endswith(".egg-info")}


def setuptools_version() -> tuple[int, ...]:
    try:
        import setuptools
    except ImportError:
        return (0,)
    return tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    if setuptools_version() < (77,):
        pytest.fail("building the wheel needs setuptools>=77 in this environment (pyproject's license field): "
                    f"{sys.executable} -m pip install 'setuptools>=77'")
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=junk)  # a clean copy: the build leaves build/ and egg-info behind
    out = work / "dist"
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "--quiet", "--wheel-dir", str(out), str(source)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (path,) = out.glob("croupier-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (member,) = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(f".dist-info/{name}")]
    return wheel.read(member).decode()


def modules(wheel: zipfile.ZipFile) -> list[str]:
    return [n for n in wheel.namelist() if ".dist-info/" not in n]


def test_one_top_level_name(wheel):
    assert {n.split("/")[0] for n in modules(wheel)} == {"croupier"}
    top_level = set(dist_info(wheel, "top_level.txt").split())
    assert top_level == {"croupier"}, top_level


def test_croupier_is_a_namespace_and_dev_code_stays_out(wheel):
    names = modules(wheel)
    assert "croupier/__init__.py" not in names  # a namespace package: nothing else may claim croupier
    for dev in ("bench", "tests"):
        assert not [n for n in names if dev in n.split("/")[:2]], f"{dev}/ is in the wheel"


def test_every_module_is_in_the_wheel(wheel):
    """A new subpackage missing from pyproject's package list fails here."""
    names = set(modules(wheel))
    missing = [str(p.relative_to(ROOT)) for folder in PACKAGES for p in sorted((ROOT / folder).rglob("*.py"))
               if "__pycache__" not in p.parts and f"croupier/{p.relative_to(ROOT).as_posix()}" not in names]
    assert not missing, f"not in the wheel (add the package to [tool.setuptools] packages): {missing}"


def test_package_data_is_in_the_wheel(wheel):
    names = set(modules(wheel))
    for folder, pattern in DATA:
        expected = [p for p in (ROOT / folder).glob(pattern) if p.is_file() and "__pycache__" not in p.parts]
        assert expected, f"{folder}/{pattern} matches nothing in the repository"
        missing = [str(p.relative_to(ROOT)) for p in expected
                   if f"croupier/{p.relative_to(ROOT).as_posix()}" not in names]
        assert not missing, f"package data missing from the wheel: {missing}"
    for required in ("croupier/router/lua/record_event.lua", "croupier/router/static/beacon.js",
                     "croupier/nginx/croupier.conf.j2", "croupier/variants/examples/demo/a.json"):
        assert required in names


def test_console_scripts_point_into_the_wheel(wheel):
    names = set(modules(wheel))
    entry_points = dist_info(wheel, "entry_points.txt")
    scripts, section = {}, None
    for line in entry_points.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and section == "console_scripts":
            name, _, target = (part.strip() for part in line.partition("="))
            scripts[name] = target
    assert {"croupier-router", "croupier-stack", "croupier-variant", "croupier-ope", "croupier-model"} <= set(scripts)
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        assert module.startswith("croupier."), f"{name} = {target}"
        path = module.replace(".", "/") + ".py"
        assert path in names, f"{name} = {target}: {path} is not in the wheel"
        tree = ast.parse(wheel.read(path))
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        defined |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        assert attr.split(".")[0] in defined, f"{name} = {target}: no {attr} in {path}"


def test_the_wheel_imports_nothing_by_its_old_names(wheel):
    """Inside the wheel only croupier.* exists: an import of router.* or scripts.* would fail when installed."""
    offending = []
    for name in modules(wheel):
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(wheel.read(name))):
            if isinstance(node, ast.Import):
                heads = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                heads = [node.module.split(".")[0]]
            else:
                continue
            offending += [f"{name}:{node.lineno}" for h in heads if h in PACKAGES or h in ("bench", "tests")]
    assert not offending, offending
