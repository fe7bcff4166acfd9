"""The package reads top to bottom as the README's Layout says: no module imports one listed after it."""
from __future__ import annotations

import ast
import re

from conftest import REPO


FAMILY = "adversarial"  # a package of packages: each model in it (irgan/, cfgan/, apr.py) is a unit of its own


def layout_order() -> list[str]:
    """Units in the order the README's Layout paragraph names them (`irgan/x.py`, `irgan/x/`, or
    `irgan/adversarial/y/` and `irgan/adversarial/y.py`, the unit ``adversarial/y``)."""
    text = (REPO / "README.md").read_text().split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    names = [m.group(1) for m in re.finditer(rf"`irgan/((?:{FAMILY}/)?\w+)(?:\.py|/)`", text)]
    return list(dict.fromkeys(names))


def unit(parts: list[str]) -> str:
    """The layout unit of a module path's parts below irgan/ (``irgan.models.mf``: models;
    ``irgan.adversarial.cfgan.game``: adversarial/cfgan)."""
    if parts[0] == FAMILY and len(parts) > 1 and parts[1] != "__init__":
        return f"{FAMILY}/{parts[1]}"
    return parts[0]


def irgan_imports(path) -> set[str]:
    """The layout units ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("irgan."):
            found.add(unit(node.module.split(".")[1:]))
        elif isinstance(node, ast.Import):
            found.update(unit(a.name.split(".")[1:]) for a in node.names if a.name.startswith("irgan."))
    return found


def is_alias(path) -> bool:
    """A module kept at an old path that hands over its new one (sys.modules), importing nothing else."""
    return "sys.modules[__name__] = _module" in path.read_text()


def test_no_module_imports_one_listed_after_it():
    order = layout_order()
    rank = {name: i for i, name in enumerate(order)}
    base = {"errors", "device", "distributed", "kernels", "model_files", "progress", "memory"}  # helpers below or beside the flow
    package = REPO / "irgan"
    for path in sorted(package.rglob("*.py")):
        me = unit([part.removesuffix(".py") for part in path.relative_to(package).parts])
        if me in ("__init__", FAMILY) or me in base or is_alias(path):
            continue
        assert me in rank, f"irgan/{me} is missing from the README's Layout"
        later = {dep for dep in irgan_imports(path) - {me} if dep not in base and rank[dep] > rank[me]}
        assert not later, f"{path.relative_to(REPO)} imports {sorted(later)}, listed after it in the Layout"


def test_config_imports_nothing_of_irgan():
    assert irgan_imports(REPO / "irgan" / "config.py") == set()


def test_every_top_level_name_resolves():
    import irgan
    for name in irgan.__all__:
        assert getattr(irgan, name) is not None
    try:
        irgan.no_such_name
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_the_cli_does_not_import_scikit_learn():
    """``python -m irgan.train`` pays no start-up for the estimators' scikit-learn (0.9 s here)."""
    import subprocess
    import sys
    code = "import sys, irgan.train; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_old_module_paths_are_the_moved_modules():
    """Code written against the flat layout keeps working: each old path is the new module itself."""
    import importlib
    package = REPO / "irgan"
    aliases = [path for path in sorted(package.rglob("*.py")) if is_alias(path)]
    assert len(aliases) >= 10
    for path in aliases:
        old = ".".join(("irgan", *path.relative_to(package).with_suffix("").parts))
        new = re.search(r"this module is ``(irgan[\w.]+)``", path.read_text()).group(1)
        assert importlib.import_module(old) is importlib.import_module(new), old
