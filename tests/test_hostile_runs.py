"""Runs never lose work and fail in one line: the run folder, resuming, devices, memory, progress.

The concurrent ``--out`` and kill-during-write cases use real processes; the others run the CLI
in-process, with failures (a full disk, a read-only folder) injected where the OS would raise them.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import irgan.adversarial.irgan.game
import irgan.adversarial.irgan.recipe
import irgan.train
from helpers import REPO, WAIT_S, start, wait_for
from irgan.estimator import IRGAN
from irgan.train import main

FAST = ["--split", "random", "--epochs", "2", "--d-epochs", "1", "--g-epochs", "2", "--pretrain-epochs", "2",
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

HELD_IN_PLAY = """
import pathlib, sys, time
import irgan.adversarial.irgan.recipe
def hold(*args, **kwargs):  # the game, replaced: tell the test the run holds its folder, then wait for SIGINT
    pathlib.Path(sys.argv[-1]).touch()
    time.sleep(600)
irgan.adversarial.irgan.recipe.fit_irgan = hold
from irgan.train import main
sys.exit(main(sys.argv[1:-1]))
"""


def test_a_second_run_on_the_same_out_refuses_while_the_first_runs(ratings, tmp_path):
    out, playing = tmp_path / "run", tmp_path / "playing"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen([sys.executable, "-c", HELD_IN_PLAY, "--dataset", str(ratings), *FAST, "--epochs", "7",
                                  "--out", str(out), str(playing)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(playing, first)  # the first run holds the folder until it is sent SIGINT below
        second = subprocess.run([sys.executable, "-m", "irgan.train", "--dataset", str(ratings), *FAST, "--out", str(out)],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=WAIT_S)
        assert second.returncode == 2
        line = one_error_line(second.stderr)
        assert "another run" in line and f"pid {first.pid} " in line and str(out) in line
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=WAIT_S)
    assert first.returncode == 130
    assert json.loads((out / "run.json").read_text())["config"]["epochs"] == 7  # the first run's, not overwritten


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
    monkeypatch.setattr(irgan.adversarial.irgan.recipe, "fit_irgan", fail)


def test_a_full_disk_in_the_first_epoch_keeps_init_pt_and_the_run_resumes(ratings, tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "train_state.pt"))
    monkeypatch.setattr(irgan.adversarial.irgan.game, "save_train_state", full)
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
def test_a_configuration_that_cannot_fit_is_refused_before_training(ratings, tmp_path, capsys, monkeypatch, flag, value):
    def never(*args, **kwargs):
        pytest.fail("training started")
    monkeypatch.setattr(irgan.adversarial.irgan.recipe, "_pretrained", never)
    monkeypatch.setattr(irgan.adversarial.irgan.recipe, "fit_irgan", never)
    code, err = call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r"), flag, value], capsys)
    assert code == 2 and "GiB" in one_error_line(err) and "free" in err
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
    epochs = [line for line in result.stderr.splitlines() if "irgan.adversarial.irgan.game: outer epoch" in line]
    assert [line.split("outer epoch ")[1].split(",")[0] for line in epochs] == [f"{e}/5" for e in range(1, 6)]
    assert all("D loss" in line and "G reward" in line and "selection P@5" in line for line in epochs)
    assert len(result.stderr) + len(result.stdout) < 5000


def test_quiet_still_logs_each_outer_epoch(ratings, tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="irgan")
    assert call(["--dataset", str(ratings), *FAST, "--out", str(tmp_path / "r")], capsys)[0] == 0
    epochs = [r for r in caplog.records if r.name == "irgan.adversarial.irgan.game" and "outer epoch" in r.getMessage()]
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
    """The holder releases (unlinks the lock file) between this claim's open and its flock: the
    lock then holds an inode no other claimant can see, so the path is opened and locked again."""
    import irgan.rundir as rundir
    path, real_flock, released = tmp_path / rundir.RunDir.LOCK, fcntl.flock, []

    def flock_after_a_release(fd, operation):
        if not released:
            released.append(os.fstat(fd).st_ino)
            path.unlink()
        return real_flock(fd, operation)
    monkeypatch.setattr(rundir.fcntl, "flock", flock_after_a_release)
    fd = rundir._lock(path)
    try:
        assert released and path.is_file() and os.fstat(fd).st_ino == os.stat(path).st_ino
        assert path.read_text() == f"pid {os.getpid()} on {socket.gethostname()}"
        monkeypatch.undo()
        with pytest.raises(FileExistsError, match=rf"another run \(pid {os.getpid()} on .*\) is writing to {re.escape(str(tmp_path))}"):
            rundir._lock(path)  # the lock others see is held
    finally:
        os.close(fd)


def test_a_lock_file_replaced_on_every_try_is_one_error(tmp_path, monkeypatch):
    import irgan.rundir as rundir
    path, real_flock, tries = tmp_path / rundir.RunDir.LOCK, fcntl.flock, []

    def flock_after_a_release(fd, operation):
        tries.append(fd)
        path.unlink()
        return real_flock(fd, operation)
    monkeypatch.setattr(rundir.fcntl, "flock", flock_after_a_release)
    with pytest.raises(FileExistsError, match="keeps being replaced"):
        rundir._lock(path)
    assert len(tries) > 1  # it tried again before giving up


# --- RunDir itself ------------------------------------------------------------------------------

def test_default_folders_are_new_for_each_claim_and_only_what_a_run_wrote_is_abandoned(tmp_path):
    from irgan.rundir import RunDir
    default = tmp_path / "a" / "runs" / "r"  # its parents are made too
    first = RunDir.claim(None, default, False, "run.json", "done")
    second = RunDir.claim(None, default, False, "run.json", "done")
    assert (first.path, second.path) == (default, default.with_name("r-2")) and first.created and not first.resume
    first.write("run.json", b"{}")
    first.write("run.json", b"{ }")  # rewritten: still one file this run wrote
    (first.path / "theirs").write_text("kept")  # not written by the run: never removed
    (first.path / "logs").mkdir()
    assert first.written == [default / "run.json"] and (default / "run.json").read_bytes() == b"{ }"
    first.abandon(also=("logs",))
    assert sorted(p.name for p in default.iterdir()) == [".irgan.lock", "theirs"]
    (default / "theirs").unlink()
    first.abandon()  # now only the lock is left: the folder it made goes too
    first.release()
    assert not default.exists()
    second.write("run.json", b"{}")
    second.abandon(keep_if=("missing", "run.json"))  # what a resume needs exists: the folder stays whole
    second.release()
    assert sorted(p.name for p in second.path.iterdir()) == ["run.json"]


def test_a_folder_the_user_made_stays_when_a_run_in_it_fails(tmp_path):
    from irgan.rundir import RunDir
    out = tmp_path / "mine"
    out.mkdir()
    claim = RunDir.claim(out, tmp_path / "unused", False, "run.json", "done")
    assert not claim.created and not claim.resume
    claim.write("run.json", b"{}")
    claim.abandon()
    claim.release()
    assert out.is_dir() and list(out.iterdir()) == []


def test_claims_that_cannot_be_made_are_one_error_each_and_leave_the_folder_as_it_was(tmp_path):
    from irgan.rundir import RunDir
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match=r"--out .*file is a file, not a directory"):
        RunDir.claim(tmp_path / "file", tmp_path, False, "run.json", "done")
    with pytest.raises(FileNotFoundError, match=r"empty is not an irgan run directory \(no run.json\)"):
        RunDir.claim(tmp_path / "empty", tmp_path, True, "run.json", "done")
    assert not (tmp_path / "empty").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "data.csv").write_text("1,2")
    with pytest.raises(FileExistsError, match=r"output directory .*full is not empty: choose another --out"):
        RunDir.claim(full, tmp_path, False, "run.json", "done")
    assert [p.name for p in full.iterdir()] == ["data.csv"]
    (full / "run.json").write_text("{}")
    (full / "done").write_text("{}")
    with pytest.raises(FileExistsError, match=r"run .*full has already finished: nothing to resume"):
        RunDir.claim(full, tmp_path, True, "run.json", "done")
    assert sorted(p.name for p in full.iterdir()) == ["data.csv", "done", "run.json"]  # the lock is released too
    (full / "done").unlink()
    resumed = RunDir.claim(full, tmp_path, True, "run.json", "done")
    assert resumed.resume and not resumed.created
    resumed.write("new", b"")
    resumed.abandon()  # a resumed run removes nothing
    assert (full / "new").exists()
    resumed.release()


def test_a_claim_removes_leftover_temporary_files_and_release_drops_the_lock(tmp_path):
    from irgan.rundir import RunDir
    out = tmp_path / "r"
    out.mkdir()
    (out / "run.json").write_text("{}")
    (out / ".state.pt.a1b2.tmp").write_bytes(b"torn")
    (out / "visible.tmp").write_bytes(b"mine")
    claim = RunDir.claim(out, tmp_path, True, "run.json", "done")
    assert sorted(p.name for p in out.iterdir()) == [".irgan.lock", "run.json", "visible.tmp"]
    claim.release()
    assert not (out / ".irgan.lock").exists()
    with pytest.raises(OSError):
        os.fstat(claim.lock_fd)  # closed: the lock is dropped
    RunDir.claim(out, tmp_path, True, "run.json", "done").release()  # and can be taken again


def test_paths_are_stored_absolute(tmp_path, monkeypatch):
    from irgan.rundir import absolute
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert absolute(None) is None
    assert absolute("data/../x") == str(tmp_path / "x") and absolute("~/d") == str(tmp_path / "home" / "d")


def test_a_nested_out_is_made_with_its_parents_and_a_lock_the_umask_allows(tmp_path):
    from irgan.rundir import RunDir
    old = os.umask(0o022)
    try:
        claim = RunDir.claim(tmp_path / "a" / "b" / "r", tmp_path, False, "run.json", "done")
    finally:
        os.umask(old)
    assert claim.created and (claim.path / RunDir.LOCK).stat().st_mode & 0o777 == 0o644
    (claim.path / RunDir.LOCK).unlink()  # removed by hand: abandoning still removes the folder it made
    claim.abandon()
    claim.release()
    assert not claim.path.exists()


@pytest.mark.parametrize("content, holder", [(b"pid 7 on box", "pid 7 on box"), (b"", "another process"),
                                             (b"pid \xff7", "pid \ufffd7")])
def test_a_held_lock_names_its_holder(tmp_path, content, holder):
    import irgan.rundir as rundir
    path = tmp_path / rundir.RunDir.LOCK
    path.write_bytes(content)
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: another claimant, as far as flock goes
    try:
        with pytest.raises(FileExistsError) as err:
            rundir._lock(path)
    finally:
        os.close(fd)
    assert str(err.value) == f"another run ({holder}) is writing to {tmp_path}: wait for it, or choose another --out"


def test_a_leftover_temporary_file_removed_meanwhile_does_not_fail_a_claim(tmp_path, monkeypatch):
    """A resume that finds a cut-short write's temporary file, which another cleanup removes first."""
    from irgan.rundir import RunDir
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    real_glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: [*real_glob(self, pattern), self / ".gone.tmp"])
    claim = RunDir.claim(run, tmp_path / "default", True, "run.json", "metrics.json")
    claim.release()


def test_a_cleanup_that_fails_never_hides_the_error_of_the_run(tmp_path, monkeypatch):
    """abandon() removes what it can: a folder it cannot empty stays, and no error of its own escapes."""
    from irgan.rundir import RunDir
    claim = RunDir.claim(tmp_path / "run", tmp_path / "default", False, "run.json", "metrics.json")
    stuck = claim.path / "parts"
    stuck.mkdir()
    (stuck / "a.pt").write_bytes(b"x")
    claim.written.append(stuck)
    real_unlink = os.unlink

    def refuse(path, *args, **kwargs):
        if str(path).endswith("a.pt"):
            raise PermissionError(errno.EACCES, "refused", str(path))
        return real_unlink(path, *args, **kwargs)
    monkeypatch.setattr(os, "unlink", refuse)
    claim.abandon()
    claim.release()
    assert (stuck / "a.pt").exists()
