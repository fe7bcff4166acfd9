"""Every README code block works as written: python blocks run verbatim, bash blocks' irgan commands parse."""
from __future__ import annotations

import argparse
import importlib
import inspect
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Callable, Mapping

import pytest

from conftest import REPO
from irgan import evaluate
from irgan.models import Popularity

# each python block of the README, (section heading, index among the section's python blocks) -> its test
PYTHON_BLOCK_TESTS = {
    ("The adversarial family: CFGAN and APR", 0): "test_adversarial_family_example_runs",
    ("Python API", 0): "test_python_api_example_runs",
    ("Python API", 1): "test_grid_search_example_runs",
    ("Plug in your own scorer", 0): "test_plug_in_your_own_scorer_example_runs",
}
EXEMPT = (("pip", "install"), ("python", "-m", "pytest"))  # set-up lines: installing, and these tests themselves
VARIABLES = {"DATA": "cfgan-ml100k"}  # a variable the bash blocks set -> the folder under the shared data it names


def readme_blocks(language: str) -> list[tuple[str, int, str]]:
    """Every ```language block of the README as (section heading, index among the section's such blocks, text)."""
    blocks, counts, section, fence = [], Counter(), "", None
    for line in (REPO / "README.md").read_text().splitlines(keepends=True):
        if fence is not None:
            if line.rstrip() == "```":
                if fence[0] == language:
                    blocks.append((section, counts[section], "".join(fence[1])))
                    counts[section] += 1
                fence = None
            else:
                fence[1].append(line)
        elif line.startswith("```"):
            fence = (line[3:].strip(), [])
        elif line.startswith("## "):
            section = line[3:].strip()
    return blocks


def run_block(section: str, index: int = 0) -> dict:
    """Execute the README's python block ``index`` of ``section`` as it is written; its namespace."""
    text = next(code for where, i, code in readme_blocks("python") if (where, i) == (section, index))
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(text, "README.md", "exec"), namespace)
    return namespace


def test_every_python_block_has_a_test():
    blocks = {(section, index) for section, index, _ in readme_blocks("python")}
    untested = sorted(blocks - set(PYTHON_BLOCK_TESTS))
    assert not untested, f"README python blocks without a test (add one to PYTHON_BLOCK_TESTS): {untested}"
    assert blocks == set(PYTHON_BLOCK_TESTS), f"tests of blocks gone from the README: {set(PYTHON_BLOCK_TESTS) - blocks}"
    assert all(callable(globals().get(name)) for name in PYTHON_BLOCK_TESTS.values())


@pytest.fixture
def in_readme_session(shared_data, tmp_path, monkeypatch) -> Path:
    """What a reader of the README has: the data under $IRGAN_DATA, an empty working folder."""
    monkeypatch.setenv("IRGAN_DATA", str(shared_data))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_python_api_example_runs(in_readme_session, no_network, capsys):
    namespace = run_block("Python API", 0)
    model, same = namespace["model"], namespace["same"]
    assert (in_readme_session / "irgan.pt").is_file()
    assert same.recommend([1, 2], k=5).equals(model.recommend([1, 2], k=5))
    assert len(model.history_) == 3 * 50  # three outer epochs of the default 50 G-epochs, each evaluated
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("P@3", "NDCG@10", "MRR", "rank"))
    assert not no_network


def test_grid_search_example_runs(in_readme_session, no_network, capsys):
    namespace = run_block("Python API", 1)
    ratings, search = namespace["ratings_df"], namespace["search"]
    assert len(ratings) == 100_000 and {"user", "item", "rating"} <= set(ratings.columns)
    assert search.n_splits_ == 3 and search.best_params_["lr"] in (0.01, 0.05)
    assert len(search.cv_results_["params"]) == 2 and 0 < search.best_score_ < 1
    assert "'lr'" in capsys.readouterr().out
    assert not no_network


def test_plug_in_your_own_scorer_example_runs(in_readme_session, capsys):
    namespace = run_block("Plug in your own scorer")
    model, same = namespace["model"], namespace["same"]
    assert type(model.generator_.scorer).__name__ == "BiasedMF"
    assert type(same.discriminator_.scorer).__name__ == "BiasedMF"
    assert (in_readme_session / "biased_mf.pt").is_file()
    assert len(model.history_) == 2 * 5  # two outer epochs of five G-epochs, each evaluated
    data = namespace["data"]
    printed = float(re.fullmatch(r"P@5 (\d\.\d{3})\n", capsys.readouterr().out).group(1))
    popularity = evaluate(Popularity(data.train.matrix), data.train, data.test)["P@5"]
    assert printed >= popularity  # what the README says to expect of it


def test_adversarial_family_example_runs(in_readme_session, shared_data, capsys):
    if not (shared_data / "cfgan-ml100k" / "ML100K.train").is_file():
        pytest.skip("CFGAN's released split not found under IRGAN_DATA")
    namespace = run_block("The adversarial family: CFGAN and APR")
    cfgan, apr = namespace["cfgan"], namespace["apr"]
    assert cfgan.best_epoch_ == 2 and apr.best_pretrain_epoch_ == 10 and apr.best_epoch_ == 2
    assert (in_readme_session / "cfgan.pt").is_file()
    printed = capsys.readouterr().out
    assert printed.count("'P@20'") == 2 and "CFGAN" in printed and "APR" in printed


# --- bash blocks ------------------------------------------------------------------------------


def readme_commands() -> list[tuple[str, str]]:
    """Every command line of the README's bash blocks as (section heading, line), continued lines joined."""
    commands = []
    for section, _, text in readme_blocks("bash"):
        for line in text.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append((section, line.strip()))
    return commands


class Recorded(Exception):
    """Raised by a command's work function, patched: the command line parsed, nothing ran."""


def record_calls(monkeypatch: pytest.MonkeyPatch, module: str, names: tuple[str, ...]) -> list[tuple[str, dict]]:
    """Patch ``module``'s functions ``names`` to record their bound arguments and raise Recorded."""
    calls: list[tuple[str, dict]] = []
    target = importlib.import_module(module)
    for name in names:
        signature = inspect.signature(getattr(target, name))

        def work(*args: object, _name: str = name, _signature: inspect.Signature = signature, **kwargs: object) -> None:
            calls.append((_name, dict(_signature.bind(*args, **kwargs).arguments)))
            raise Recorded(_name)
        monkeypatch.setattr(target, name, work)
    monkeypatch.setattr(target, "keep_freed_memory", lambda: False)  # process-wide: not for a test process
    return calls


def record_parsers(monkeypatch: pytest.MonkeyPatch) -> list[argparse.ArgumentParser]:
    """Every argument parser that parses from now on (the commands build theirs inside main)."""
    parsers: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_known_args

    def parse_known_args(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> tuple:
        parsers.append(self)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_known_args)
    return parsers


def entry_point(words: list[str]) -> tuple[str, Callable[[list[str]], int], list[str]]:
    """(the irgan command, the main that runs it, main's argv) of a command line: ``python -m irgan.X``,
    ``torchrun ... -m irgan.X`` or the console script ``irgan X``."""
    if words[0] == "irgan":
        from irgan.cli import main
        return words[1], main, words[1:]
    if words[0] in ("python", "torchrun") and "-m" in words:
        module, argv = words[words.index("-m") + 1], words[words.index("-m") + 2:]
        if module.startswith("irgan."):
            return module.removeprefix("irgan."), importlib.import_module(module).main, argv
    raise AssertionError(f"{shlex.join(words)!r} is no irgan command this test can check: teach entry_point it")


def substitute(line: str, data: Path | None) -> str:
    """``line`` with each $VAR / ${VAR} of VARIABLES replaced by its real folder under ``data``."""
    def real(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in VARIABLES and data is not None, f"unknown variable ${name} in the README: add it to VARIABLES"
        return str(data / VARIABLES[name])
    return re.sub(r"\$(?:(\w+)|\{(\w+)\})", real, line)


def flags(argv: list[str]) -> list[str]:
    """The option strings of ``argv`` as written (``--x=1`` gives ``--x``)."""
    return [word.split("=", 1)[0] for word in argv if word.startswith("-") and not re.fullmatch(r"-[\d.]+", word)]


WORK = {"train": ("irgan.train", ("run", "run_model")), "compare": ("irgan.compare", ("compare",))}


@pytest.mark.parametrize("section, line", readme_commands(),
                         ids=[f"{section}: {shlex.join(shlex.split(line, comments=True))[:60]}"
                              for section, line in readme_commands()])
def test_readme_command_parses(section, line, request, tmp_path, monkeypatch, no_network, capsys):
    """A bash block's command, shell-split as written, is accepted flag for flag by the command's own parser.

    These commands train for minutes to an hour, so CI parses them instead of running them: the command's
    ``main`` runs for real up to its work function (``irgan.train.run`` / ``run_model``, ``irgan.compare.compare``),
    which records its arguments and stops. A renamed or removed flag fails here, abbreviations included.
    """
    words = shlex.split(line, comments=True)
    if len(words) == 1 and re.fullmatch(r"\w+=.+", words[0]):  # a variable: the test gives the folder it names
        name, value = words[0].split("=", 1)
        assert VARIABLES.get(name) == Path(value).name, f"{line!r}: map ${name} to its folder in VARIABLES"
        return
    if any(tuple(words[:len(prefix)]) == prefix for prefix in EXEMPT):
        return
    command = entry_point(words)[0]
    data = None
    if "$" in line or command == "compare":  # irgan compare reads its data before its work function
        data = request.getfixturevalue("shared_data")
        monkeypatch.setenv("IRGAN_DATA", str(data))
    monkeypatch.chdir(tmp_path)
    command, main, argv = entry_point(shlex.split(substitute(line, data), comments=True))
    assert command in WORK, f"{line!r}: no work function known for irgan {command}: add it to WORK"
    calls = record_calls(monkeypatch, *WORK[command])
    parsers = record_parsers(monkeypatch)
    if "--help" in argv:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0 and not calls
        shown = capsys.readouterr().out
        if "--model" in argv:  # "CFGANConfig's fields as flags": every field is one
            from irgan.train import model_classes
            config = model_classes(argv[argv.index("--model") + 1])[0]
            assert all(f"--{name.replace('_', '-')}" in shown for name in config.__dataclass_fields__)
    else:
        try:
            main(argv)
        except Recorded:
            pass
        except SystemExit as refusal:
            pytest.fail(f"{line!r} is refused (exit {refusal.code}): {capsys.readouterr().err.strip()[-300:]}")
        assert len(calls) == 1, f"{line!r} did not reach its work function: {capsys.readouterr().err.strip()[-300:]}"
        check_arguments(command, argv, calls[0][1])
    known = set().union(*(parser._option_string_actions for parser in parsers))
    assert set(flags(argv)) <= known, f"{line!r}: flags no parser defines: {sorted(set(flags(argv)) - known)}"
    assert not no_network


def check_arguments(command: str, argv: list[str], arguments: Mapping) -> None:
    """What a parsed command line handed its work function: the data it names, valid model names."""
    if command == "train" and "--dataset" in argv:
        assert str(arguments["dataset"]) == argv[argv.index("--dataset") + 1]
    if command == "compare":
        from irgan.config import SELECT_METRICS
        from irgan.protocol import CANDIDATES
        models, trials = arguments["models"], arguments["trials"]
        assert models and set(models) <= set(CANDIDATES), models
        assert arguments["metric"] in SELECT_METRICS
        assert not isinstance(trials, Mapping) or set(trials) - {"*"} <= set(models), trials
