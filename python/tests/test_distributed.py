"""The Dask driver (mtl_model.distributed) on a LocalCluster of 2 worker processes: each
command through the cluster prints what the single process prints and writes a model equal to
the single process's; a worker killed in the middle of a task changes nothing but the time."""
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from conftest import cli_path, fixture

distributed = pytest.importorskip("distributed")

from mtl_model import distributed as driver  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as connected:
        yield connected
    cluster.close()


@pytest.fixture
def executable(cli):
    return cli_path()


def workspace(root, executable, shards=4):
    """Two directories with the same sharded model at in/m.mtlm and an empty out/."""
    sides = {}
    for name in ("single", "planned"):
        side = root / name
        (side / "out").mkdir(parents=True)
        sides[name] = side
    (sides["single"] / "in").mkdir()
    made = subprocess.run([executable, "shard", fixture("v1.0", "small-training.mtlm"), str(sides["single"] / "in" / "m.mtlm"),
                           "--shards", str(shards)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    # A second model split alike (its int8 quantization), for diff and delta.
    made = subprocess.run([executable, "quantize", "in/m.mtlm", "in/n.mtlm", "--embeddings", "int8"], capture_output=True, text=True,
                          cwd=sides["single"])
    assert made.returncode == 0, made.stderr
    shutil.copytree(sides["single"] / "in", sides["planned"] / "in")
    return sides["single"], sides["planned"]


def through_driver(command, side, client, executable, capfd, monkeypatch, **options):
    monkeypatch.chdir(side)
    capfd.readouterr()
    status = driver.run(command, client=client, executable=executable, **options)
    return status, capfd.readouterr().out


def single(command, side, executable):
    done = subprocess.run([executable] + command, capture_output=True, text=True, cwd=side)
    return done.returncode, done.stdout


def same_models(executable, a, b):
    done = subprocess.run([executable, "diff", str(a), str(b), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["equal"]


COMMANDS = [
    (["verify", "in/m.mtlm", "--json"], None, 0),
    (["quantize", "in/m.mtlm", "out/q.mtlm", "--embeddings", "int4", "--json"], "out/q.mtlm", 0),
    (["convert", "in/m.mtlm", "out/s.mtlm", "--to", "serving"], "out/s.mtlm", 0),
    (["shard", "in/m.mtlm", "out/r.mtlm", "--shards", "3"], "out/r.mtlm", 0),
    (["diff", "in/m.mtlm", "in/n.mtlm", "--json", "--rows"], None, 1),
    (["delta", "in/m.mtlm", "in/n.mtlm", "out/d.mtlmd"], None, 0),
]


@pytest.mark.parametrize("command,output,exit_code", COMMANDS, ids=[c[0][0] for c in COMMANDS])
def test_same_as_single_process(command, output, exit_code, tmp_path, client, executable, capfd, monkeypatch):
    one, planned = workspace(tmp_path, executable)
    expected_status, expected = single(command, one, executable)
    assert expected_status == exit_code
    status, printed = through_driver(command, planned, client, executable, capfd, monkeypatch)
    assert status == exit_code
    if command[0] == "delta":
        # The root's size can differ by a byte or two (its shards' hashes as varints); it must
        # apply to the base and rebuild the new model.
        assert printed.split(":")[0] == expected.split(":")[0]
        assert printed.split("; ")[1:] == expected.split("; ")[1:]
        applied = subprocess.run([executable, "apply", "in/m.mtlm", "out/d.mtlmd", "out/rebuilt.mtlm"], cwd=planned,
                                 capture_output=True, text=True)
        assert applied.returncode == 0, applied.stderr
        assert same_models(executable, planned / "in" / "n.mtlm", planned / "out" / "rebuilt.mtlm")
    else:
        assert printed == expected
    if output:
        assert same_models(executable, one / output, planned / output)
        assert sorted(os.listdir(planned / "out")) == sorted(os.listdir(one / "out"))
    # The default plan (beside the input) is removed once finished.
    assert [name for name in os.listdir(planned / "in") if "plan" in name] == []


def test_verify_of_a_broken_model_exits_1_with_the_same_problems(tmp_path, client, executable, capfd, monkeypatch):
    one, planned = workspace(tmp_path, executable)
    for side in (one, planned):
        os.remove(side / "in" / "m-00003-of-00004.mtlm")
    command = ["verify", "in/m.mtlm"]
    expected_status, expected = single(command, one, executable)
    status, printed = through_driver(command, planned, client, executable, capfd, monkeypatch)
    assert (status, printed) == (expected_status, expected) and status == 1
    assert "shard 3 of 4" in printed


def wrapper_killing(directory, executable, index, name, kill):
    """An mtl-model that, the first time it runs task `index`, runs the shell lines `kill`
    instead of the task; every other call is the real CLI."""
    marker = directory / (name + "-once")
    script = directory / ("mtl-model-" + name)
    script.write_text("""#!/bin/bash
if [ "$1" = run-task ] && [ "$4" = %d ] && [ ! -e %s ]; then
  touch %s
%s
fi
exec "%s" "$@"
""" % (index, marker, marker, kill % {"cli": executable}, executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, marker


def killing_wrapper(directory, executable, index):
    """Starts task `index` the first time, lets it write for a moment, then kills its worker
    process (its parent), the task and itself."""
    return wrapper_killing(directory, executable, index, "killing",
                           '  "%(cli)s" "$@" &\n  sleep 0.05\n  kill -9 $PPID\n  kill -9 $!\n  kill -9 $$')


def test_a_worker_killed_mid_task(tmp_path, client, executable, capfd, monkeypatch):
    one, planned = workspace(tmp_path, executable)
    wrapper, marker = killing_wrapper(tmp_path, executable, 1)
    command = ["quantize", "in/m.mtlm", "out/q.mtlm", "--embeddings", "int8"]
    expected_status, expected = single(command, one, executable)
    status, printed = through_driver(command, planned, client, wrapper, capfd, monkeypatch)
    assert marker.exists(), "the wrapper did not kill a worker"
    assert status == 0 and printed == expected
    assert same_models(executable, one / "out" / "q.mtlm", planned / "out" / "q.mtlm")
    # Nothing partial anywhere: exactly the root and its shards (no staged or temporary file).
    assert sorted(os.listdir(planned / "out")) == sorted(os.listdir(one / "out"))
    client.wait_for_workers(2, timeout=60)


def test_refusals(tmp_path, client, executable, capfd, monkeypatch):
    one, planned = workspace(tmp_path, executable)
    monkeypatch.chdir(planned)
    with pytest.raises(driver.DriverError, match="cannot be planned"):
        driver.run(["inspect", "in/m.mtlm"], client=client, executable=executable, plan=str(planned / "p.json"))
    with pytest.raises(driver.DriverError, match="no mtl-model on PATH|is not an executable"):
        driver.run(["verify", "in/m.mtlm"], client=client, executable=str(tmp_path / "missing"))
    # A task that fails on its own (its input changed after planning) stops the run, naming it.
    plan = planned / "p.json"
    made = subprocess.run([executable, "plan", "verify", "in/m.mtlm", "--out", str(plan)], capture_output=True, text=True)
    assert made.returncode == 0
    data = json.loads(plan.read_text())
    data["tasks"][0]["reads"] = ["/nonexistent/shard.mtlm"]
    models = [model["path"] for model in data["inputs"]]
    assert "does not see /nonexistent:" in _visibility_error(client, executable, str(plan), models, data["tasks"])
    status = driver.main(["verify", "in/m.mtlm", "--scheduler", "local:0", "--mtl-model", executable])
    assert status == 2
    assert "needs N >= 1" in capfd.readouterr().err


def _visibility_error(client, executable, plan, models, tasks):
    try:
        driver._check_visible(client, executable, plan, models, tasks)
    except driver.DriverError as error:
        return str(error)
    return ""


def self_killing_wrapper(directory, executable, index):
    """Killed by a signal the first time it runs task `index` (as the OOM killer would): its
    worker survives, so the driver, not Dask, must run it again."""
    return wrapper_killing(directory, executable, index, "self-killing", "  kill -9 $$")


def test_retries_and_progress(tmp_path, client, executable, capfd, monkeypatch):
    one, planned = workspace(tmp_path, executable)
    command = ["dequantize", "in/n.mtlm", "out/d.mtlm"]
    expected_status, expected = single(command, one, executable)
    # A task killed by a signal is run again (default --retries 3), and the progress bar counts the tasks.
    wrapper, marker = self_killing_wrapper(tmp_path, executable, 2)
    monkeypatch.chdir(planned)
    capfd.readouterr()
    status = driver.run(command, client=client, executable=str(wrapper), progress=True)
    printed, progress = capfd.readouterr()
    assert marker.exists()
    assert (status, printed) == (expected_status, expected) and status == 0
    assert "4/4 tasks" in progress and "[" + "#" * 30 + "]" in progress
    # With --retries 0 the first loss ends the run, naming the task; nothing is written.
    os.remove(marker)
    with pytest.raises(driver.DriverError, match=r"task 2: its worker was lost 1 times .*killed by signal 9.*--retries 0"):
        driver.run(["dequantize", "in/n.mtlm", "out/e.mtlm"], client=client, executable=str(wrapper), retries=0)
    assert not os.path.exists(planned / "out" / "e.mtlm")
    # The run's own plan is removed with its results and what its tasks wrote (a task still
    # running then removes its own output when it finds the plan gone).
    def leftovers():
        return [name for name in os.listdir(planned / "in") if "plan" in name] + \
               [name for name in os.listdir(planned / "out") if ".plan-" in name or name.startswith(".")]
    deadline = time.monotonic() + 20
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers() == []


def test_command_line_on_its_own_local_cluster(tmp_path, executable):
    """`python -m mtl_model.distributed` as a user runs it: a LocalCluster of its own, the
    report on stdout, the command's exit code."""
    one, planned = workspace(tmp_path, executable)
    command = ["diff", "in/m.mtlm", "in/n.mtlm", "--rows", "--top", "2"]
    expected_status, expected = single(command, one, executable)
    done = subprocess.run([sys.executable, "-m", "mtl_model.distributed"] + command
                          + ["--scheduler", "local:1", "--mtl-model", executable, "--quiet"],
                          capture_output=True, text=True, cwd=planned)
    assert (done.returncode, done.stdout) == (expected_status, expected) and expected_status == 1, done.stderr
    assert [name for name in os.listdir(planned / "in") if "plan" in name] == []
    done = subprocess.run([sys.executable, "-m", "mtl_model.distributed", "verify", "in/m.mtlm", "--scheduler", "tcp://127.0.0.1:9",
                           "--mtl-model", executable, "--timeout", "2"], capture_output=True, text=True, cwd=planned)
    assert done.returncode == 2 and "cannot reach the scheduler tcp://127.0.0.1:9" in done.stderr, done.stderr
