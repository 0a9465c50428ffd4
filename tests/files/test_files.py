"""files/: safe names, the exclusive lock (real processes), whole-directory atomicity (a SIGKILLed writer)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpnetz.errors import InputError
from bpnetz.files.atomic import MARKER, atomic_directory, clean_leftovers, output_directory
from bpnetz.files.lock import exclusive_lock, lock_path
from bpnetz.files.names import MAX_NAME_LENGTH, path_under, safe_name


@pytest.mark.parametrize("name", ["0", "model", "fold_1.a-b", "-x"])
def test_safe_names_pass(name):
    assert safe_name(name, what="fold key", source="splits.json") == name


@pytest.mark.parametrize("name", ["/../../x", "..", ".", ".hidden", "a/b", "a\\b", "", "x y", "é",
                                  "a" * (MAX_NAME_LENGTH + 1)])
def test_unsafe_names_name_their_source(name):
    with pytest.raises(InputError) as err:
        safe_name(name, what="fold key", source="splits.json")
    assert str(err.value).startswith("splits.json: the fold key") and "Rename the fold key" in str(err.value)


def test_path_under_refuses_escapes_and_links(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert path_under(out, "a", "b.txt") == out / "a" / "b.txt"
    (out / "link").symlink_to(tmp_path)
    for names in (("..", "x"), ("link", "x"), ("/etc",), ()):
        with pytest.raises(InputError, match="outside the output directory"):
            path_under(out, *names)


# ------------------------------------------------------------------------------------------------ the lock


def _hold(target: str, ready, release) -> None:
    with exclusive_lock(target, what="store"):
        ready.set()
        release.wait(30)


def _try(target: str, queue) -> None:
    try:
        with exclusive_lock(target, what="store"):
            queue.put("acquired")
    except InputError as err:
        queue.put(str(err))


def test_second_process_fails_at_once_naming_the_holder(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release, queue = ctx.Event(), ctx.Event(), ctx.Queue()
    holder = ctx.Process(target=_hold, args=(str(tmp_path / "s.zarr"), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        other = ctx.Process(target=_try, args=(str(tmp_path / "s.zarr"), queue))
        other.start()
        other.join(60)
        message = queue.get(timeout=5)
        assert f"pid {holder.pid} on {socket.gethostname()}" in message and "another bpnetz process" in message
    finally:
        release.set()
        holder.join(60)
    assert not lock_path(tmp_path / "s.zarr").exists()  # released on exit
    _try(str(tmp_path / "s.zarr"), queue)
    assert queue.get(timeout=5) == "acquired"


def _wait_and_record(target: str, log: str) -> None:
    with exclusive_lock(target, wait=True):
        with open(log, "a") as handle:
            handle.write(f"in {os.getpid()}\n")
        time.sleep(0.5)
        with open(log, "a") as handle:
            handle.write(f"out {os.getpid()}\n")


def test_waiting_writers_never_overlap(tmp_path):
    ctx = mp.get_context("spawn")
    log = tmp_path / "log"
    procs = [ctx.Process(target=_wait_and_record, args=(str(tmp_path / "t"), str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    lines = log.read_text().split()
    events = [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]
    assert len(events) == 6
    for i in range(0, 6, 2):  # strictly nested: in A, out A, in B, out B, ...
        assert events[i][0] == "in" and events[i + 1] == ("out", events[i][1])


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    pid = int(dead.stdout)
    path = lock_path(tmp_path / "out")
    path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "command": "x", "token": "t",
                                "started": "2020-01-01T00:00:00+00:00"}))
    with exclusive_lock(tmp_path / "out"):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert "took over the stale lock" in capsys.readouterr().err


def test_lock_of_another_host_is_reported_with_its_age(tmp_path):
    lock_path(tmp_path / "out").write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "bpnetz build",
                                                       "token": "t", "started": "2020-01-01T00:00:00+00:00"}))
    with pytest.raises(InputError, match=r"pid 1 on elsewhere \(command: bpnetz build; started 2020-01-01.*"
                                         r"running for \d+ s"), exclusive_lock(tmp_path / "out"):
        pass


# -------------------------------------------------------------------------------------- atomic directories


def test_failed_run_leaves_the_previous_output(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / MARKER).is_file() and (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("second")
        raise RuntimeError("halfway")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left


def test_rerun_replaces_the_whole_directory(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "logo_old.png").write_text("x")
    with atomic_directory(target) as tmp:
        (tmp / "logo_new.png").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "logo_new.png"]


def test_a_users_directory_is_never_replaced(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="bpnetz did not write"), atomic_directory(target) as tmp:
        (tmp / "x").write_text("x")
    assert (target / "thesis.tex").read_text() == "precious"


KILLED_WRITER = """
import sys, time
from pathlib import Path
from bpnetz.files.atomic import output_directory
with output_directory(sys.argv[1]) as tmp:
    (tmp / "half.txt").write_text("half")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_sigkilled_writer_leaves_previous_output_and_next_run_cleans(tmp_path, capsys):
    target = tmp_path / "out"
    with output_directory(target) as tmp:
        (tmp / "done.txt").write_text("previous")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (target / "done.txt").read_text() == "previous" and not (target / "half.txt").exists()
    assert any(".bpnetz-tmp-" in p.name for p in tmp_path.iterdir())
    with output_directory(target) as tmp:  # the dead writer's lock is stale; its temporary is removed
        (tmp / "done.txt").write_text("next")
    err = capsys.readouterr().err
    assert "took over the stale lock" in err and "unfinished output of an earlier run" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (target / "done.txt").read_text() == "next"


def test_killed_during_swap_restores_the_previous_output(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("previous")
    os.replace(target, tmp_path / ".out.bpnetz-old-1234abcd")  # killed between the two renames
    assert clean_leftovers(target) and (target / "a.txt").read_text() == "previous"


def test_a_track_name_becomes_a_bigwig_name_only_when_safe(tmp_path):
    import numpy as np

    from bpnetz.genome.bigwig import write_track_bigwigs

    values = np.ones((1, 10, 2), dtype=np.float32)
    written = write_track_bigwigs(str(tmp_path / "{name}.bw"), {"chr1": 100}, ["chr1"], np.array([5]), values,
                                  ["task/plus", "minus"])
    assert [p.name for p in written] == ["task_plus.bw", "minus.bw"]
    with pytest.raises(InputError, match="track name '.._x'"):
        write_track_bigwigs(str(tmp_path / "{name}.bw"), {"chr1": 100}, ["chr1"], np.array([5]), values,
                            ["../x", "b"])
    assert not (tmp_path.parent / "x.bw").exists()


def test_a_link_to_an_output_directory_replaces_the_directory_it_points_to(tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    with output_directory(real) as tmp:
        (tmp / "a").write_text("1")
    link.symlink_to(real)
    with output_directory(link) as tmp:
        (tmp / "b").write_text("2")
    assert link.is_symlink() and sorted(p.name for p in real.iterdir()) == [MARKER, "b"]
