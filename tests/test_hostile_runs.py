"""Runs never lose work and fail in one line: the run folder, resuming, devices, memory, progress.

The concurrent ``--out`` and kill-during-write cases use real processes; the others run the CLI
in-process, with failures (a full disk, a read-only folder) injected where the OS would raise them.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import irgan.pipeline
import irgan.train
import irgan.trainer
from helpers import REPO, WAIT_S, start, wait_for
from irgan.estimator import IRGAN
from irgan.train import main

FAST = ["--split", "random", "--epochs", "2", "--d-epochs", "1", "--g-epochs", "2", "--pretrain-epochs", "2",
        "--device", "cpu", "--quiet"]
SLOW = ["--split", "random", "--epochs", "40", "--d-epochs", "50", "--g-epochs", "50", "--pretrain-epochs", "2",
        "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    """40 users x 30 items, 15 ratings (1-5) each, raw ids that are not 0..n-1."""
    rng = np.random.default_rng(0)
    lines = ["user,item,rating"]
    for u in range(40):
        lines += [f"{1000 + u},{7 * i + 3},{rng.integers(1, 6)}" for i in rng.choice(30, 15, replace=False)]
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def call(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("INFO ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- the run folder --------------------------------------------------------------------------

def test_a_second_run_on_the_same_out_refuses_while_the_first_runs(ratings, tmp_path):
    out = tmp_path / "run"
    first = start(["--dataset", str(ratings), *SLOW, "--out", str(out)], tmp_path, tmp_path / "first.log")
    try:
        wait_for(out / "run.json", first)
        second = subprocess.run([sys.executable, "-m", "irgan.train", "--dataset", str(ratings), *FAST, "--out", str(out)],
                                cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                                text=True, timeout=WAIT_S)
        assert second.returncode == 2
        line = one_error_line(second.stderr)
        assert "another run" in line and str(out) in line
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=WAIT_S)
    assert json.loads((out / "run.json").read_text())["config"]["epochs"] == 40  # the first run's, not overwritten


def test_default_run_folders_are_unique_within_one_second(ratings, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(irgan.train.time, "strftime", lambda fmt: "20260101-000000")
    assert call(["--dataset", str(ratings), *FAST], capsys)[0] == 0
    assert call(["--dataset", str(ratings), *FAST], capsys)[0] == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["ratings-20260101-000000", "ratings-20260101-000000-2"]
    assert all((tmp_path / "runs" / name / "metrics.json").exists() for name in runs)


def test_the_run_folder_is_logged_first(ratings, tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="irgan")
    assert call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r")], capsys)[0] == 0
    assert caplog.messages[0] == f"run folder: {tmp_path / 'r'}"


def test_a_finished_run_folder_holds_only_its_files(ratings, tmp_path, capsys):
    out = tmp_path / "r"
    assert call(["--dataset", str(ratings), *FAST, "--out", str(out)], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["history.jsonl", "init.pt", "metrics.json", "model.pt", "run.json"]


def test_run_json_stores_absolute_paths_so_resume_works_from_elsewhere(ratings, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ratings.parent)
    out = tmp_path / "r"
    interrupt_in_play(monkeypatch)
    assert call(["--dataset", ratings.name, *FAST, "--out", str(out), "--data-dir", "."], capsys)[0] == 130
    request = json.loads((out / "run.json").read_text())
    assert request["dataset"] == str(ratings) and request["data_dir"] == str(ratings.parent)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert call(["--resume", str(out), "--quiet"], capsys)[0] == 0


def interrupt_in_play(monkeypatch, error: BaseException | None = None) -> None:
    """Make the game raise ``error`` (Ctrl-C by default) once G's pretrained start is saved."""
    def fail(*args, **kwargs):
        raise error or KeyboardInterrupt
    monkeypatch.setattr(irgan.pipeline, "fit_irgan", fail)


def test_a_full_disk_in_the_first_epoch_keeps_init_pt_and_the_run_resumes(ratings, tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "train_state.pt"))
    monkeypatch.setattr(irgan.trainer, "save_train_state", full)
    code, err = call(["--dataset", str(ratings), *FAST, "--out", str(out)], capsys)
    assert code == 2
    assert "No space left on device" in one_error_line(err)
    assert {"run.json", "init.pt"} <= {p.name for p in out.iterdir()}
    monkeypatch.undo()
    assert call(["--resume", str(out), "--quiet"], capsys)[0] == 0
    assert (out / "metrics.json").exists()


def test_a_failed_start_in_a_folder_the_user_made_leaves_it_as_it_was(ratings, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    args = ["--dataset", str(ratings), *FAST, "--out", str(out), "--split", "loo"]  # needs timestamps: none
    code, err = call(args, capsys)
    assert code == 2 and "timestamp" in one_error_line(err)
    assert out.is_dir() and list(out.iterdir()) == []


def test_leftover_temporary_files_are_removed_on_resume(ratings, tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    interrupt_in_play(monkeypatch)
    assert call(["--dataset", str(ratings), *FAST, "--out", str(out)], capsys)[0] == 130
    monkeypatch.undo()
    (out / ".train_state.pt.x1y2.tmp").write_bytes(b"torn")
    assert call(["--resume", str(out), "--quiet"], capsys)[0] == 0
    assert not list(out.glob(".*.tmp"))


KILLED_WHILE_WRITING = """
import os, sys, time
import irgan.checkpoint as checkpoint
save = checkpoint.torch.save
def slow_save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("format") == checkpoint.STATE_FORMAT:
        f.write(b"half a state")
        f.flush()
        open(sys.argv[-1], "w").close()  # tell the test: the temporary file is half written
        time.sleep(600)
    return save(obj, f, *args, **kwargs)
checkpoint.torch.save = slow_save
from irgan.train import main
sys.exit(main(sys.argv[1:-1]))
"""


def test_sigkill_in_the_middle_of_a_write_loses_nothing(ratings, tmp_path, capsys):
    out, flag = tmp_path / "r", tmp_path / "writing"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WHILE_WRITING, "--dataset", str(ratings), *FAST,
                                 "--out", str(out), str(flag)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(flag, proc)
        assert list(out.glob(".train_state.pt.*.tmp"))  # the write is under way
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
    assert not (out / "train_state.pt").exists()  # never torn: the rename did not happen
    assert call(["--resume", str(out), "--quiet"], capsys)[0] == 0
    assert not list(out.glob(".*.tmp")) and (out / "metrics.json").exists()


# --- resuming --------------------------------------------------------------------------------

def test_resume_with_other_flags_refuses_listing_them(ratings, tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    interrupt_in_play(monkeypatch)
    assert call(["--dataset", str(ratings), *FAST, "--out", str(out)], capsys)[0] == 130
    monkeypatch.undo()
    code, err = call(["--resume", str(out), "--d-lr", "0.5", "--seed", "3", "--pretrain-epochs", "2"], capsys)
    line = one_error_line(err)
    assert code == 2 and "--d-lr 0.5" in line and "--seed 3" in line and "pretrain-epochs" not in line
    assert not (out / "metrics.json").exists()
    assert call(["--resume", str(out), "--quiet", "--epochs", "2", "--device", "cpu"], capsys)[0] == 0  # same values


def test_resume_after_the_data_changed_before_the_first_state_refuses(ratings, tmp_path, monkeypatch, capsys):
    data = tmp_path / "ratings.csv"
    data.write_text(ratings.read_text())
    out = tmp_path / "r"
    interrupt_in_play(monkeypatch)
    assert call(["--dataset", str(data), *FAST, "--out", str(out)], capsys)[0] == 130
    monkeypatch.undo()
    assert (out / "init.pt").exists() and not (out / "train_state.pt").exists()
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:1] + [line.replace(",1\n", ",5\n") for line in lines[1:]] + ["9999,3,5"]) + "\n")
    code, err = call(["--resume", str(out), "--quiet"], capsys)
    assert code == 2 and "other data" in one_error_line(err)


def test_init_pt_of_other_pretraining_settings_is_refused(ratings, tmp_path, monkeypatch, capsys):
    out, other = tmp_path / "r", tmp_path / "o"
    interrupt_in_play(monkeypatch)
    assert call(["--dataset", str(ratings), *FAST, "--out", str(out)], capsys)[0] == 130
    assert call(["--dataset", str(ratings), *FAST, "--out", str(other), "--pretrain-lr", "0.2"], capsys)[0] == 130
    monkeypatch.undo()
    (out / "init.pt").write_bytes((other / "init.pt").read_bytes())
    code, err = call(["--resume", str(out), "--quiet"], capsys)
    assert code == 2 and "other settings" in one_error_line(err) and "pretrain" in err


# --- one line for every failure ----------------------------------------------------------------

@pytest.mark.parametrize("device", ["mps", "gpu", "cuda:x", "tpu"])
def test_unknown_devices_are_one_line_listing_the_choices(ratings, tmp_path, capsys, device):
    code, err = call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r"), "--device", device], capsys)
    assert code == 2 and "auto, cpu, cuda or cuda:N" in one_error_line(err)
    assert not (tmp_path / "r").exists()


def test_cuda_without_a_gpu_is_one_line(ratings, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(irgan.train.torch.cuda, "is_available", lambda: False)
    code, err = call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r"), "--device", "cuda:0"], capsys)
    assert code == 2 and "no CUDA GPU" in one_error_line(err)


def test_an_over_long_out_name_is_one_line(ratings, tmp_path, capsys):
    code, err = call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / ("x" * 300))], capsys)
    assert code == 2 and "File name too long" in one_error_line(err)


def test_a_read_only_out_is_one_line(ratings, tmp_path, capsys, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
    monkeypatch.setattr(irgan.train.Path, "mkdir", refuse)
    code, err = call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "ro" / "r")], capsys)
    assert code == 2 and "Permission denied" in one_error_line(err)


def test_out_under_a_file_is_one_line(ratings, tmp_path, capsys):
    (tmp_path / "f").write_text("keep")
    code, err = call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "f" / "r")], capsys)
    assert code == 2 and one_error_line(err)
    assert (tmp_path / "f").read_text() == "keep"


def test_divergence_reports_divergence_not_nan_scores(ratings, tmp_path, capsys):
    code, err = call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r"), "--g-lr", "1e38",
                      "--d-lr", "1e38"], capsys)
    line = one_error_line(err)
    assert code == 2 and "IRGAN diverged in outer epoch" in line and "lower learning rates" in line


@pytest.mark.parametrize("flag, value", [("--dim", "10000000"), ("--g-sample-factor", "1000000000")])
def test_a_configuration_that_cannot_fit_is_refused_before_training(ratings, tmp_path, capsys, flag, value):
    started = time.perf_counter()
    code, err = call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r"), flag, value], capsys)
    assert code == 2 and "GiB" in one_error_line(err) and "free" in err
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "r").exists()


def test_min_rating_must_be_a_number_or_none(ratings, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r"), "--min-rating", "four"])
    assert exit_.value.code == 2 and "number or 'none'" in capsys.readouterr().err


# --- progress and logs -------------------------------------------------------------------------

def test_piped_output_is_one_line_per_outer_epoch_without_bars(ratings, tmp_path):
    """Not in a terminal (and without --quiet): no carriage-return frames; one log line per outer epoch."""
    args = [a for a in FAST if a != "--quiet"]
    result = subprocess.run([sys.executable, "-m", "irgan.train", "--dataset", str(ratings), *args, "--epochs", "5",
                             "--out", str(tmp_path / "r")], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "\r" not in result.stdout
    epochs = [line for line in result.stderr.splitlines() if "irgan.trainer: outer epoch" in line]
    assert [line.split("outer epoch ")[1].split(",")[0] for line in epochs] == [f"{e}/5" for e in range(1, 6)]
    assert all("D loss" in line and "G reward" in line and "selection P@5" in line for line in epochs)
    assert len(result.stderr) + len(result.stdout) < 5000


def test_quiet_still_logs_each_outer_epoch(ratings, tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="irgan")
    assert call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r")], capsys)[0] == 0
    epochs = [r for r in caplog.records if r.name == "irgan.trainer" and "outer epoch" in r.getMessage()]
    assert len(epochs) == 2 and all(r.levelname == "INFO" for r in epochs)


def test_estimator_verbose_logs_each_outer_epoch(ratings, capsys):
    import pandas as pd
    frame = pd.read_csv(ratings)
    IRGAN(epochs=2, d_epochs=1, g_epochs=1, pretrain={"epochs": 1}, device="cpu", verbose=True).fit(frame)
    err = capsys.readouterr().err
    assert sum("outer epoch" in line for line in err.splitlines()) == 2
    IRGAN(epochs=2, d_epochs=1, g_epochs=1, pretrain={"epochs": 1}, device="cpu").fit(frame)
    assert "outer epoch" not in capsys.readouterr().err


def test_tensorboard_events_hold_the_history_scalars(ratings, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "r"
    assert call(["--dataset", str(ratings), *FAST, "--out", str(out), "--tensorboard"], capsys)[0] == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("selection/P@5")] == pytest.approx([r["selection"]["P@5"] for r in history])
    assert [e.value for e in events.Scalars("g_reward")] == pytest.approx([r["g_reward"] for r in history])
    assert [e.step for e in events.Scalars("d_loss")] == [1, 2, 3, 4]


def test_written_files_follow_the_umask(ratings, tmp_path, capsys):
    old = os.umask(0o027)
    try:
        out = tmp_path / "r"
        assert call(["--dataset", str(ratings), *FAST, "--out", str(out)], capsys)[0] == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert set(modes.values()) == {0o640}, modes


def test_zero_pretraining_epochs_is_not_called_a_dns_start(ratings, tmp_path, capsys):
    args = ["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r"), "--pretrain-epochs", "0"]
    capsys.readouterr()
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "init (random: 0 pretraining epochs)" in table and "init (dns)" not in table


def test_a_folder_named_like_a_data_set_does_not_shadow_it(tmp_path, monkeypatch):
    from irgan.rundir import absolute_if_file
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "mine.csv").write_text("1,2\n")
    monkeypatch.chdir(tmp_path)
    assert absolute_if_file("ml-100k") == "ml-100k"
    assert absolute_if_file("mine.csv") == str(tmp_path / "mine.csv")


def test_resume_refuses_a_reading_option_the_run_did_not_have(ratings, tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    interrupt_in_play(monkeypatch)
    assert call(["--dataset", str(ratings), *FAST, "--out", str(out)], capsys)[0] == 130
    monkeypatch.undo()
    code, err = call(["--resume", str(out), "--min-rating", "none"], capsys)
    assert code == 2 and "--min-rating None (the run has its default)" in one_error_line(err)


def test_resume_and_out_together_are_one_line(ratings, tmp_path, capsys):
    code, err = call(["--resume", str(tmp_path / "a"), "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "not both" in one_error_line(err)


def test_a_lock_on_a_replaced_lock_file_is_taken_again(tmp_path, monkeypatch):
    import irgan.rundir as rundir
    real_stat, calls = os.stat, []

    def stat_once_elsewhere(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if str(path).endswith(rundir.RunDir.LOCK) and not calls:
            calls.append(path)
            return os.stat_result((result.st_mode, result.st_ino + 1, *tuple(result)[2:]))
        return result
    monkeypatch.setattr(rundir.os, "stat", stat_once_elsewhere)
    fd = rundir._lock(tmp_path / rundir.RunDir.LOCK)
    try:
        assert calls and os.fstat(fd).st_ino == real_stat(tmp_path / rundir.RunDir.LOCK).st_ino
    finally:
        os.close(fd)
