"""Times the Dask driver against the single process and a shell loop (benchmarks/driver.sh)."""
import glob
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings

from distributed import Client, LocalCluster

from mtl_model import distributed as driver

binary = work = model = tiny = None  # set by main()
spread = {}  # name: (fastest, slowest) seconds of its rounds
runs = 0


def files(root):
    return [root] + sorted(glob.glob(root[:-len(".mtlm")] + "-*-of-*.mtlm"))


def warm(root):
    for path in files(root):
        with open(path, "rb") as stream:
            while stream.read(64 << 20):
                pass


def cli(*arguments):
    subprocess.run([binary] + list(arguments), check=True, stdout=subprocess.DEVNULL)


def median_seconds(body, root):
    """Median wall seconds of `runs` calls of `body`, `root`'s files read into the page cache first."""
    return rotated_medians([("", body)], root)[""]


def rotated_medians(configs, root):
    """Median wall seconds of each (name, body) over `runs` rounds, every config once a round in
    an order rotated from round to round: this VM's write costs drift by 2× within minutes, and
    all runs of one config in a row would hand the drift to one config."""
    times = {name: [] for name, _ in configs}
    for round_index in range(runs):
        for name, body in configs[round_index % len(configs):] + configs[:round_index % len(configs)]:
            warm(root)
            started = time.perf_counter()
            body()
            times[name].append(time.perf_counter() - started)
    spread.update({name: (min(values), max(values)) for name, values in times.items()})
    return {name: statistics.median(values) for name, values in times.items()}


def quantize(root, output, threads):
    return ["quantize", root, output, "--embeddings", "int8", "--threads", str(threads)]


def shell_loop(root, output):
    """plan, every run-task one after the other, finish: the CLI's own cost of a plan."""
    plan = work + "/loop.json"
    cli("plan", *quantize(root, output, 1), "--out", plan)
    for index in range(16):
        cli("run-task", plan, "--index", str(index))
    cli("finish", plan)


def through(client, root, output):
    """The driver, its finish's report (printed on file descriptor 1) sent to /dev/null."""
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    sys.stdout.flush()
    os.dup2(null, 1)
    try:
        status = driver.run(quantize(root, output, 1), client=client, executable=binary, plan=work + "/dask.json")
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
    assert status == 0, status


def main():
    """Worker processes of a LocalCluster import this module again: the work runs only here."""
    global binary, work, runs, model, tiny
    # Two clusters are up at once: the second's scheduler says it found the first's port taken.
    warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
    logging.getLogger("distributed").setLevel(logging.ERROR)
    binary, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model, tiny = work + "/s16.mtlm", work + "/tiny16.mtlm"
    volume = sum(os.path.getsize(path) for path in files(model))
    print("model: %.2f GiB in 16 shards; quantize --embeddings int8; %d round(s), each config once a round in a rotated order; medians" % (volume / 2**30, runs))
    out = work + "/q.mtlm"
    configs = [("single process, 1 thread", lambda: cli(*quantize(model, out, 1))),
               ("single process, 2 threads", lambda: cli(*quantize(model, out, 2))),
               ("plan + 16 × run-task + finish, one after another", lambda: shell_loop(model, out))]
    costs, clusters = {}, []
    for workers in (1, 2):
        started = time.perf_counter()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
        costs["start a LocalCluster of %d worker(s)" % workers] = time.perf_counter() - started
        clusters.append((cluster, client))
        configs.append(("Dask driver, LocalCluster of %d worker(s)" % workers, lambda client=client: through(client, model, out)))
    # Every config once a round (both clusters stay up: idle workers cost nothing measurable).
    medians = rotated_medians(configs, model)
    rows = [(name, medians[name]) for name, _ in configs]
    client = clusters[1][1]
    tiny_out = work + "/tiny-q.mtlm"
    costs["driver on a 16-shard model of %d KiB (2 workers): plan, 16 tasks, finish"
          % (sum(os.path.getsize(p) for p in files(tiny)) // 1024)] = median_seconds(lambda: through(client, tiny, tiny_out), tiny)
    costs["the same tasks in a shell loop"] = median_seconds(lambda: shell_loop(tiny, tiny_out), tiny)
    for cluster, client in clusters:
        client.close()
        cluster.close()

    base = rows[0][1]
    for name, seconds in rows:
        print("%-52s %7.2f s  %5.2f GB/s  speedup %.2f× over 1 thread  (rounds %.2f–%.2f s)"
              % (name, seconds, volume / seconds / 1e9, base / seconds, *spread[name]))
    for name, seconds in costs.items():
        print("%-52s %7.3f s" % (name, seconds))


if __name__ == "__main__":
    main()
