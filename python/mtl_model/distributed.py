"""Run an ``mtl-model`` command on a sharded model as one task per shard on a Dask cluster.

``python -m mtl_model.distributed COMMAND ARGS... --scheduler local:N|tcp://HOST:PORT
[--mtl-model PATH] [--plan PLAN.json] [--retries R] [--timeout SECONDS] [--quiet]``

COMMAND is one the Swift tool can plan (verify, quantize, dequantize, convert, shard, diff,
delta; diff and delta of two models split alike). The
driver makes the plan (``mtl-model plan``), checks that every worker sees the plan's files,
maps ``mtl-model run-task PLAN --index I`` over the workers (each a subprocess of the Swift
CLI on the worker), resubmits a task whose worker died (up to R times), and finishes
(``mtl-model finish``) here: what it prints is what COMMAND prints run in one process, and its
exit code is the driver's. docs/SCALE.md says how to run it on Slurm and on Kubernetes.

Shards are read from and written to paths every worker sees: a shared filesystem mounted at
the same path everywhere (NFS, Lustre, a PVC). The plan and its results directory must be
there too (``--plan``; by default a hidden file beside the command's first existing path
argument, removed with its results and, when the run fails, with what its tasks wrote; a plan
named with ``--plan`` is kept on failure, so the failed task can be run again and finished).

Exit codes: the finish's (0 success, 1 a negative verdict), or 2 (a usage error, a path a
worker cannot see, a task that failed, a worker lost more often than ``--retries``).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

__all__ = ["run", "main", "DriverError"]


class DriverError(Exception):
    """A run that cannot go on: the message is one line naming the task or path."""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mtl_model.distributed", allow_abbrev=False,
                                     description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s COMMAND ARGS... --scheduler local:N|tcp://HOST:PORT [options]")
    parser.add_argument("--scheduler", required=True,
                        help="local:N (a LocalCluster of N worker processes on this machine) or a scheduler's address")
    parser.add_argument("--mtl-model", dest="executable", help="the Swift CLI on the workers (default: mtl-model on PATH)")
    parser.add_argument("--plan", help="where to write the plan (on the shared filesystem)")
    parser.add_argument("--retries", type=int, default=3, help="resubmissions of a task whose worker died (default 3)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for the scheduler (default 30)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    options, command = parser.parse_known_args(argv)
    if not command or command[0].startswith("-"):
        parser.error("name the command to run (verify, quantize, dequantize, convert, shard, diff, delta) and its arguments")
    if options.retries < 0:
        parser.error("--retries must be at least 0")
    try:
        return run(command, scheduler=options.scheduler, executable=options.executable, plan=options.plan,
                   retries=options.retries, progress=not options.quiet and sys.stderr.isatty(), timeout=options.timeout)
    except DriverError as error:
        print("mtl-model.distributed: error: %s" % error, file=sys.stderr)
        return 2


def run(command, scheduler=None, client=None, executable=None, plan=None, retries=3, progress=False, timeout=30):
    """Plans ``command`` (a list of arguments), runs its tasks on the cluster, finishes; returns
    the finish's exit code (its output goes to this process's stdout and stderr).

    ``scheduler`` is ``local:N`` or an address (reached within ``timeout`` seconds); or pass a
    connected ``distributed.Client``.
    """
    executable = _executable(executable)
    chosen = plan is not None
    plan = os.path.abspath(plan or _default_plan_path(command))
    made = subprocess.run([executable, "plan"] + list(command) + ["--out", plan], capture_output=True, text=True)
    if made.returncode != 0:
        raise DriverError(_error_line(made.stderr) or "mtl-model plan failed (exit %d)" % made.returncode)
    with open(plan) as stream:
        planned = json.load(stream)
    tasks = planned["tasks"]
    owned = None
    try:
        if client is None:
            client, owned = _connect(scheduler, timeout)
        _check_visible(client, executable, plan, [model["path"] for model in planned["inputs"]], tasks)
        _run_tasks(client, executable, plan, tasks, retries, progress)
    except DriverError as error:
        if not chosen:
            _abandon(plan, tasks)
            raise
        raise DriverError("%s (the plan %s keeps what its tasks wrote: run the task again with mtl-model run-task, then "
                          "mtl-model finish)" % (error, plan))
    finally:
        if owned is not None:
            client.close()
            owned.close()
    finished = subprocess.run([executable, "finish", plan])
    if not chosen:
        # This run's own plan serves nobody once it ends: it goes, with its results and, if the
        # finish refused it, the shards its tasks wrote.
        _abandon(plan, tasks)
    return finished.returncode


def _abandon(plan, tasks):
    """Removes a plan, its results and its tasks' staged outputs. A task still running when its
    plan is removed finds its result directory gone and removes its own output."""
    for task in tasks:
        if task.get("writes"):
            try:
                os.remove(task["writes"])
            except FileNotFoundError:
                pass
    shutil.rmtree(plan + ".d", ignore_errors=True)
    try:
        os.remove(plan)
    except FileNotFoundError:
        pass


def _executable(given):
    path = given or shutil.which("mtl-model")
    if path is None:
        raise DriverError("no mtl-model on PATH: install the Swift CLI, or name it with --mtl-model PATH")
    if not os.access(path, os.X_OK):
        raise DriverError("%s is not an executable (--mtl-model)" % path)
    return os.path.abspath(path)


def _default_plan_path(command):
    """Beside the first argument that names an existing file (the input model), so on the
    filesystem the workers share."""
    for argument in command[1:]:
        if not argument.startswith("-") and os.path.isfile(argument):
            directory, name = os.path.split(os.path.abspath(argument))
            return os.path.join(directory, ".%s.%s-%d.plan.json" % (name, command[0], os.getpid()))
    raise DriverError("no input file in the command to put the plan beside: name one with --plan")


def _connect(scheduler, timeout):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DriverError("the driver needs Dask: pip install dask distributed")
    if scheduler is None:
        raise DriverError("name a scheduler: --scheduler local:N or tcp://HOST:PORT")
    if scheduler.startswith("local:"):
        try:
            count = int(scheduler[len("local:"):])
        except ValueError:
            count = 0
        if count < 1:
            raise DriverError("--scheduler local:N needs N >= 1 workers, got %r" % scheduler)
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="%gs" % timeout), None
    except (OSError, TimeoutError) as error:
        raise DriverError("cannot reach the scheduler %s: %s" % (scheduler, error))


def _visible(paths):
    """On a worker: the paths it does not see, and its host name."""
    return socket.gethostname(), [path for path in paths if not os.path.exists(path)]


def _check_visible(client, executable, plan, models, tasks):
    """Every worker must see, at the same paths, the CLI, the plan, its result directory, the
    models and the directory of every file a task reads or writes. (A shard missing from a
    directory the worker sees is the task's to report, as verify does.)"""
    paths = {executable, plan, plan + ".d"} | set(models)
    for task in tasks:
        paths.update(os.path.dirname(path) for path in task["reads"] + [task.get("writes") or models[0]])
    for worker, (host, missing) in sorted(client.run(_visible, sorted(paths)).items()):
        if missing:
            raise DriverError("worker %s (%s) does not see %s: every worker needs the plan's files at the same paths, "
                              "on a shared filesystem (docs/SCALE.md)" % (worker, host, missing[0]))


class _TaskFailed(Exception):
    """``mtl-model run-task`` exited non-zero on its own: running it again gives the same."""


class _TaskKilled(Exception):
    """The task's process was killed (by a signal): its worker may be going away."""


def _run_task(executable, plan, index):
    """On a worker: one task, as a subprocess of the Swift CLI."""
    done = subprocess.run([executable, "run-task", plan, "--index", str(index)], capture_output=True, text=True)
    if done.returncode < 0:
        raise _TaskKilled("task %d: mtl-model was killed by signal %d" % (index, -done.returncode))
    if done.returncode != 0:
        raise _TaskFailed(_error_line(done.stderr) or "task %d: mtl-model run-task exited %d" % (index, done.returncode))
    return index


def _run_tasks(client, executable, plan, tasks, retries, progress):
    from distributed import as_completed

    def submit(index, attempt):
        # pure=False and a key per attempt: a resubmission is a new task, never a cached result.
        return client.submit(_run_task, executable, plan, index, pure=False,
                             key="mtl-model-task-%d-%d-%s" % (index, attempt, os.path.basename(plan)))

    attempts = {task["index"]: 0 for task in tasks}
    submitted = [submit(index, 0) for index in attempts]
    pending = as_completed(submitted)
    try:
        _collect(pending, submit, attempts, retries, len(tasks), progress)
    except DriverError:
        # Tasks not started yet never start; those running end on their own.
        client.cancel(submitted + list(pending.futures))
        raise


def _collect(pending, submit, attempts, retries, total, progress):
    """Waits for every task, resubmitting one whose worker died."""
    from distributed.scheduler import KilledWorker

    done, started = 0, time.monotonic()
    for future in pending:
        index = int(future.key.split("-")[3])
        try:
            future.result()
        except _TaskFailed as error:
            raise DriverError(str(error))
        except (KilledWorker, _TaskKilled, OSError) as error:
            attempts[index] += 1
            if attempts[index] > retries:
                raise DriverError("task %d: its worker was lost %d times (%s): giving up (--retries %d)"
                                  % (index, attempts[index], _last_line(str(error)), retries))
            pending.add(submit(index, attempts[index]))
            continue
        done += 1
        if progress:
            _progress(done, total, time.monotonic() - started)
    if progress:
        sys.stderr.write("\n")


def _progress(done, total, seconds):
    width = 30
    filled = width * done // total
    sys.stderr.write("\r[%s%s] %d/%d tasks, %.1f s" % ("#" * filled, "." * (width - filled), done, total, seconds))
    sys.stderr.flush()


def _error_line(text):
    """The line of the CLI's stderr that says what went wrong (its usage lines follow it)."""
    lines = (text or "").splitlines()
    for line in lines:
        if "error:" in line:
            return line.strip()
    return _last_line(text)


def _last_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


if __name__ == "__main__":
    sys.exit(main())
