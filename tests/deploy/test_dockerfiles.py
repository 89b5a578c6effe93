"""The router's and the variant server's Dockerfiles: small, non-root, health-checked,
with every third-party module their code imports installed."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from croupier.scripts.processes import ROOT

IMAGES = {"router": ROOT / "router" / "Dockerfile", "variants": ROOT / "variants" / "Dockerfile"}
# import name -> the pip requirement that provides it
PROVIDERS = {"starlette": "starlette", "uvicorn": "uvicorn", "redis": "redis", "numpy": "numpy",
             "prometheus_client": "prometheus-client", "jinja2": "jinja2", "httpx": "httpx", "yaml": "pyyaml",
             "markupsafe": "jinja2",  # installed with it
             "pyarrow": "pyarrow", "duckdb": "duckdb", "matplotlib": "matplotlib",
             "starlette.templating": "jinja2"}  # Jinja2Templates needs jinja2 at import


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return result


def values(path: Path, keyword: str) -> list[str]:
    return [args for kw, args in instructions(path) if kw == keyword]


def _names(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return {node.module}
    return set()


def imported_modules(paths, lazy: bool) -> set[str]:
    """Third-party modules imported by these files, as written (``starlette.templating``):
    those imported inside functions (``lazy``) or those imported elsewhere (not ``lazy``)."""
    names = set()
    for source in paths:
        tree = ast.parse(source.read_text())
        in_functions = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                        for n in ast.walk(f)}
        for node in ast.walk(tree):
            if (id(node) in in_functions) == lazy:
                names |= _names(node)
    return {n for n in names if n.split(".")[0] not in sys.stdlib_module_names
            and n.split(".")[0] not in ("croupier", "__future__")}


def optional_extras() -> set[str]:
    """The requirements of pyproject.toml's optional extras that are not the test tools'."""
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {re.split(r"[\[<>=]", req)[0].lower() for name, reqs in extras.items() if name != "test" for req in reqs}


def requirements(modules: set[str]) -> set[str]:
    needed = set()
    for module in modules:
        needed.add(PROVIDERS.get(module.split(".")[0], module.split(".")[0]))
        if module in PROVIDERS:
            needed.add(PROVIDERS[module])
    return needed


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_small_base_non_root_and_health_checked(image):
    path = IMAGES[image]
    assert values(path, "FROM") == ["python:3.11-slim"]
    (user,) = values(path, "USER")
    assert user.split(":")[0] not in ("root", "0") and user.split(":")[0].isdigit(), \
        "USER must be a numeric non-root uid, so Kubernetes' runAsNonRoot can verify it"
    (health,) = values(path, "HEALTHCHECK")
    assert "CMD" in health and "--interval=" in health
    (cmd,) = values(path, "CMD")
    assert cmd.startswith("[")  # exec form: the server gets SIGTERM itself and drains


def test_router_image_runs_the_router_on_all_addresses():
    path = IMAGES["router"]
    assert values(path, "CMD") == ['["python", "-m", "croupier.router"]']
    env = " ".join(values(path, "ENV"))
    assert "CROUPIER_HOST=0.0.0.0" in env
    assert "/livez" in values(path, "HEALTHCHECK")[0]  # never /readyz: Redis must not make it unhealthy


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_imported_package_is_installed(image):
    path = IMAGES[image]
    runs = " ".join(values(path, "RUN"))
    pip_args = runs.split("pip install", 1)[1].split("&&")[0]
    installed = {re.split(r"[\[<>=]", req)[0].lower() for req in re.findall(r'"([^"]+)"', pip_args)}
    sources = list((ROOT / image).rglob("*.py"))
    if image == "router":
        sources.append(ROOT / "nginx" / "seed.py")  # shipped in the router image for the seed job
    missing = requirements(imported_modules(sources, lazy=False)) - installed
    assert not missing, f"{image}'s code imports what its image does not install: {sorted(missing)}"
    # Imported inside a function: an optional extra's package (the archive's Parquet reader,
    # for the offline tools) may stay out of the image; anything else must be in it.
    missing = requirements(imported_modules(sources, lazy=True)) - installed - optional_extras()
    assert not missing, f"{image}'s code imports what neither its image nor an extra installs: {sorted(missing)}"


def test_dockerignore_keeps_secrets_and_clutter_out_of_the_context():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".env", ".venv", "tests/", "run/"):
        assert entry in ignored


def copied_files(path: Path) -> set[Path]:
    """The project's files an image's COPY instructions put into it (sources relative to the root)."""
    files = set()
    for args in values(path, "COPY"):
        for source in [a for a in args.split() if not a.startswith("--")][:-1]:
            for match in ROOT.glob(source.rstrip("/")):
                files.update(match.rglob("*") if match.is_dir() else [match])
    return {f for f in files if "__pycache__" not in f.parts}


def project_modules(source: Path) -> set[str]:
    """In-project modules a file imports (``croupier.router.rules`` for ``from croupier.router import rules``)."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names
                         if (ROOT / node.module.removeprefix("croupier.").replace(".", "/") / f"{a.name}.py").exists())
    return {n for n in names if n.split(".")[0] in ("croupier",)}


def module_files(module: str) -> list[Path]:
    """The files Python reads to import ``module``: its own and every enclosing package's ``__init__.py``."""
    parts = module.removeprefix("croupier.").split(".")
    own = ROOT.joinpath(*parts)
    files = [own / "__init__.py" if own.is_dir() else own.with_suffix(".py")]
    return files + [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_imported_project_module_is_copied(image):
    copied = copied_files(IMAGES[image])
    missing = {f"{source.relative_to(ROOT)} imports {module}"
               for source in copied if source.suffix == ".py"
               for module in project_modules(source)
               if not set(module_files(module)) <= copied}
    assert not missing, f"{image}'s image lacks project files its code imports: {sorted(missing)}"


# The archiver's image (croupier-archive run): the router's code, the tool and pyarrow.
ARCHIVER_IMAGE = ROOT / "router" / "Dockerfile.archiver"
HEARTBEAT = "/tmp/croupier-archiver.alive"


def pip_installed(path: Path) -> set[str]:
    pip_args = " ".join(values(path, "RUN")).split("pip install", 1)[1].split("&&")[0]
    return {re.split(r"[\[<>=]", req)[0].lower() for req in re.findall(r'"([^"]+)"', pip_args)}


def test_archiver_image_is_small_non_root_and_probes_its_heartbeat():
    assert values(ARCHIVER_IMAGE, "FROM") == ["python:3.11-slim"]
    (user,) = values(ARCHIVER_IMAGE, "USER")
    assert user.isdigit() and user != "0"
    assert values(ARCHIVER_IMAGE, "CMD") == [
        f'["python", "-m", "croupier.scripts.archive", "run", "--heartbeat", "{HEARTBEAT}"]']
    (health,) = values(ARCHIVER_IMAGE, "HEALTHCHECK")
    assert "--interval=" in health and health.endswith(
        f'CMD ["python", "-m", "croupier.scripts.archive", "alive", "--heartbeat", "{HEARTBEAT}"]')
    assert "CROUPIER_ARCHIVE_DIR=/archive" in " ".join(values(ARCHIVER_IMAGE, "ENV"))
    assert values(ARCHIVER_IMAGE, "VOLUME") == ["/archive"]


def test_archiver_image_installs_what_its_code_imports():
    installed = pip_installed(ARCHIVER_IMAGE)
    sources = [f for f in copied_files(ARCHIVER_IMAGE) if f.suffix == ".py"]
    missing = requirements(imported_modules(sources, lazy=False)) - installed
    assert not missing, f"the archiver's code imports what its image does not install: {sorted(missing)}"
    # the Parquet writer is imported inside functions: it must be in this image all the same
    writer = [ROOT / "router" / "archive_files.py", ROOT / "router" / "archive.py", ROOT / "scripts" / "archive.py"]
    assert "pyarrow" in requirements(imported_modules(writer, lazy=True))
    missing = requirements(imported_modules(writer, lazy=True)) - installed
    assert not missing, f"the archiver's image lacks what it writes the archive with: {sorted(missing)}"
    assert "pyarrow" not in pip_installed(IMAGES["router"])  # the router's image stays without it


def test_archiver_image_copies_every_project_module_its_code_imports():
    copied = copied_files(ARCHIVER_IMAGE)
    assert ROOT / "scripts" / "archive.py" in copied
    missing = {f"{source.relative_to(ROOT)} imports {module}"
               for source in copied if source.suffix == ".py"
               for module in project_modules(source)
               if not set(module_files(module)) <= copied}
    assert not missing, f"the archiver's image lacks project files its code imports: {sorted(missing)}"
