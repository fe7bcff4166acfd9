"""The package reads top to bottom as the README's Layout says: no module imports one listed after it."""
from __future__ import annotations

import ast
import re

from conftest import REPO


def layout_order() -> list[str]:
    """Module names in the order the README's Layout paragraph names them (`irgan/x.py` or `irgan/x/`)."""
    text = (REPO / "README.md").read_text().split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    names = [m.group(1) for m in re.finditer(r"`irgan/(\w+)(?:\.py|/)`", text)]
    return list(dict.fromkeys(names))


def irgan_imports(path) -> set[str]:
    """The top-level irgan modules ``path`` imports (``irgan.models.mf`` counts as ``models``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("irgan."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("irgan."))
    return found


def test_no_module_imports_one_listed_after_it():
    order = layout_order()
    rank = {name: i for i, name in enumerate(order)}
    base = {"errors", "device", "distributed", "model_files", "diagnostics", "progress", "memory"}  # helpers below or beside the flow
    package = REPO / "irgan"
    for path in sorted(package.rglob("*.py")):
        me = path.relative_to(package).parts[0].removesuffix(".py")
        if me == "__init__" or me in base:
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
