"""Mutation testing of irgan, always in a copy of the working tree under /tmp, never in place.

    python tools/mutation.py known                    # issue 23's hand-made mutations: each must fail its tests
    python tools/mutation.py --at HEAD mutmut protocol  # the committed library, today's tests
    python tools/mutation.py mutmut compare metrics   # mutmut over these modules (default: all of tools/mutation.toml)
    python tools/mutation.py mutmut --minutes 20 rundir     # resumes an earlier run of rundir
    python tools/mutation.py report                   # scores and survivors of the last mutmut runs

``known`` applies each mutation of tools/mutation.toml's ``[[known]]`` list to its own copy and
runs the tests it names there: a mutation those tests pass is a test gap. ``mutmut`` copies the
tree to /tmp/irgan-mutation/MODULE, writes mutmut's settings into the copy's setup.cfg (mutate
irgan/MODULE.py only, test it with the files ``[modules]`` lists for it) and runs ``nice mutmut
run`` there for at most ``--minutes``; a second call continues where the first stopped (mutmut
keeps its results). mutmut is a tool for developers, not a test dependency: ``pip install mutmut``.
Needs Python >= 3.11 (tomllib).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = Path(__file__).with_name("mutation.toml")
WORK = Path(tempfile.gettempdir()) / "irgan-mutation"
SKIP = shutil.ignore_patterns(".git", ".hypothesis", ".pytest_cache", ".benchmarks", "*.egg-info", "__pycache__",
                              "runs", "mutants")


def copy_tree(target: Path, at: str | None = None) -> Path:
    """A fresh copy of the working tree (uncommitted edits included) at ``target``; with ``at``, its
    irgan/ is the one of git revision ``at`` (a library being edited meanwhile stays out)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO, target, ignore=SKIP)
    if at is not None:
        shutil.rmtree(target / "irgan")
        archive = subprocess.run(["git", "archive", at, "irgan"], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def env_for(copy: Path) -> dict[str, str]:
    """The environment that makes ``copy``'s irgan, not the editable install's, the one imported."""
    return {**os.environ, "PYTHONPATH": str(copy), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def imported_from(copy: Path) -> Path:
    out = subprocess.run([sys.executable, "-c", "import irgan; print(irgan.__file__)"], cwd=copy, env=env_for(copy),
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()).resolve()


def known(config: dict, keep: bool, at: str | None) -> int:
    """Apply each ``[[known]]`` mutation in its own copy and run its tests; 1 when one survives."""
    survived = []
    for k, mutation in enumerate(config["known"], 1):
        copy = copy_tree(WORK / f"known-{k}", at)
        path = copy / mutation["file"]
        text = path.read_text()
        if text.count(mutation["old"]) != 1:
            print(f"{mutation['name']}: no longer applies ({mutation['file']} holds the line "
                  f"{text.count(mutation['old'])} times)")
            survived.append(mutation["name"])
            continue
        path.write_text(text.replace(mutation["old"], mutation["new"]))
        assert imported_from(copy) == (copy / "irgan" / "__init__.py").resolve(), "the copy's irgan is not imported"
        run = subprocess.run(["nice", "-n", "10", sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                              *mutation["tests"]], cwd=copy, env=env_for(copy), capture_output=True, text=True)
        caught = run.returncode == 1
        failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
        print(f"{mutation['name']}: {'caught' if caught else 'SURVIVED'} (pytest exit {run.returncode}"
              f"{'; ' + failed[0] if failed else ''})")
        if not caught:
            survived.append(mutation["name"])
        if not keep:
            shutil.rmtree(copy)
    print(f"{len(config['known']) - len(survived)} of {len(config['known'])} caught")
    return 1 if survived else 0


def mutmut_settings(module: str, tests: list[str], settings: dict, deselect: list[str]) -> str:
    """The [mutmut] section for one module: mutate it alone, test it with ``tests`` less ``deselect``."""
    lines = ["", "[mutmut]", "source_paths = irgan", f"only_mutate = irgan/{module}.py",
             "pytest_add_cli_args_test_selection =", *(f"    {t}" for t in tests),
             "pytest_add_cli_args =", "    -p", "    no:cacheprovider",
             *(f"    {line}" for test in deselect for line in ("--deselect", test)),
             "also_copy =", "    benchmarks", "    README.md", "    data",
             "use_git_change_detection = false", "use_setproctitle = false"]
    for key, value in settings.items():
        lines += [f"{key} =", *(f"    {v}" for v in value)] if isinstance(value, list) else [f"{key} = {value}"]
    return "\n".join(lines) + "\n"


def mutmut_binary() -> str:
    found = shutil.which("mutmut") or str(Path(sys.executable).with_name("mutmut"))
    if not Path(found).is_file():
        raise SystemExit("mutmut is not installed: pip install mutmut (a developer tool, not a test dependency)")
    return found


def run_mutmut(config: dict, modules: list[str], minutes: float | None, children: int, fresh: bool,
               at: str | None, only: list[str] = ()) -> int:
    """``nice mutmut run`` per module in its own copy, each for at most ``minutes`` (default: its share in the config).
    With ``only`` (mutmut's name patterns, e.g. ``irgan.compare.x_plot*``), just those mutants, in a copy
    of their own (``MODULE-only``), so that the module's whole run is kept."""
    binary = mutmut_binary()
    for module in modules:
        budget = minutes if minutes is not None else config["minutes"][module]
        tests = [t for t in config["modules"][module] if (REPO / t.split("::")[0]).is_file()]
        copy = WORK / (f"{module}-only" if only else module)
        if fresh or not (copy / "mutants").is_dir():
            copy_tree(copy, at)
        else:  # continue the earlier run, with the tests as they are now
            for test in tests:
                shutil.copy2(REPO / test, copy / "mutants" / test)
        # written anew each time, so that a continued run tests with the files listed today
        settings = mutmut_settings(module, tests, config.get("mutmut", {}), config["deselect"]["tests"])
        (copy / "setup.cfg").write_text((REPO / "setup.cfg").read_text() + settings)
        print(f"== {module}: irgan/{module}.py against {', '.join(tests)}, at most {budget:g} min", flush=True)
        command = ["nice", "-n", "10", "timeout", "-s", "INT", f"{int(budget * 60)}", binary, "run",
                   "--max-children", str(children), *only]
        with open(copy / "mutmut.log", "a") as log:
            subprocess.run(command, cwd=copy, env={**env_for(copy), "PYTHONPATH": ""}, stdout=log, stderr=subprocess.STDOUT)
        report([f"{module}-only" if only else module])
    return 0


def report(modules: list[str]) -> int:
    """Per module: mutants killed / all that ran, the score, and every survivor by name."""
    binary = mutmut_binary()
    for module in modules:
        copy = WORK / module
        if not (copy / "mutants").is_dir():
            print(f"{module}: not run")
            continue
        out = subprocess.run([binary, "results", "--all", "true"], cwd=copy, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": ""}).stdout
        status = [line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line]
        counts: dict[str, int] = {}
        for _, state in status:
            counts[state] = counts.get(state, 0) + 1
        tried = sum(n for s, n in counts.items() if s not in ("not checked", "skipped"))
        killed = counts.get("killed", 0) + counts.get("timeout", 0) + counts.get("caught by type check", 0)
        score = f"{100 * killed / tried:.1f}%" if tried else "n/a"
        print(f"{module}: {killed} of {tried} mutants killed ({score}); {len(status)} generated; "
              + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
        for name, state in status:
            if state in ("survived", "no tests", "suspicious"):
                print(f"    {state}: {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--at", metavar="REV", help="mutate irgan/ as of git revision REV (e.g. HEAD), not the "
                        "working tree's; the tests stay the working tree's")
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("known", help="issue 23's hand-made mutations, each in its own copy")
    k.add_argument("--keep", action="store_true", help="keep the mutated copies under " + str(WORK))
    m = sub.add_parser("mutmut", help="a mutmut pass over modules, each in its own copy")
    m.add_argument("modules", nargs="*", help="default: every module of tools/mutation.toml")
    m.add_argument("--minutes", type=float, help="wall-clock budget per module (default: its share in the config)")
    m.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2: the machine's cores)")
    m.add_argument("--fresh", action="store_true", help="start again from a new copy, forgetting earlier results")
    m.add_argument("--only", nargs="+", default=[], metavar="PATTERN",
                   help="only the mutants these mutmut name patterns match (irgan.compare.x_plot*), in a copy MODULE-only")
    r = sub.add_parser("report", help="scores and survivors of the mutmut runs so far")
    r.add_argument("modules", nargs="*")
    args = parser.parse_args(argv)
    config = tomllib.loads(CONFIG.read_text())
    if args.command == "known":
        return known(config, args.keep, args.at)
    modules = args.modules or list(config["modules"])
    unknown = [name for name in modules if name.removesuffix("-only") not in config["modules"]]
    if unknown:
        parser.error(f"unknown module(s) {unknown}: tools/mutation.toml lists {', '.join(config['modules'])}")
    if args.command == "mutmut":
        return run_mutmut(config, modules, args.minutes, args.children, args.fresh, args.at, args.only)
    return report(modules)


if __name__ == "__main__":
    sys.exit(main())
