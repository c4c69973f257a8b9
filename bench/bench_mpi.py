#!/usr/bin/env python3
"""MPI benchmark (bench/README.md, "MPI"; docs/mpi.md): strong scaling of
one `mmcl embed` of a 4096^2 scene on 1 and 2 MPI ranks on this machine,
side by side with what a user would run instead on one machine (the same
program with 2 worker threads), the bytes each rank sends and receives per
megapixel, and the writer's throughput (rank 0's CPU seconds writing the
tiles, compression included, measured alone by its own thread clock).

Scene and model as bench/bench_embed.py: `mmcl synth --size N
--optical-bands 13 --sar-bands 2 --shared 2 --seed 1`; CLIP, MLP 256-256
on 3 x 3 patches, 64 output dimensions; here the hidden layers are 64, 64
by default (--hidden), for runs of minutes on a shared 2-core machine.

    /usr/bin/python3 bench/bench_mpi.py --build build --work /tmp/bm \
        --size 4096 --repeat 3

Every run is a separate process (mpirun included: its start is part of
what a user waits for), rounds interleaved; medians are quoted.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_embed import cpu_model, mmcl_blas, timed, widen_model  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1")
TRAFFIC_RE = re.compile(r"rank (\d+): (\d+) tiles, (\d+) bytes of tiles and "
                        r"(\d+) requests received from it")


def run(cmd):
    """timed() of @p cmd, with the traffic lines rank 0 reports."""
    t0 = time.time()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True,
                       text=True, env=ENV)
    if p.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(cmd), p.stderr[-2000:]))
    wall = time.time() - t0
    cpu = sum(float(re.search(r"%s time \(seconds\): ([\d.]+)" % k,
                              p.stderr).group(1)) for k in ("User", "System"))
    write = re.search(r"embed timing.*write ([\d.]+)", p.stderr)
    traffic = [tuple(int(v) for v in m.groups())
               for m in TRAFFIC_RE.finditer(p.stderr)]
    return wall, float(write.group(1)) if write else None, traffic, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE),
                                                    "build"))
    ap.add_argument("--work", default="/tmp/mmcl-bench-mpi")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--hidden", default="64,64",
                    help="the MLP's hidden sizes (bench_embed.py: 256,256)")
    a = ap.parse_args()
    mmcl = os.path.abspath(os.path.join(a.build, "mmcl"))
    os.makedirs(a.work, exist_ok=True)
    d = os.path.join(a.work, "s%d" % a.size)
    if not os.path.exists(os.path.join(d, "sar.tif")):
        subprocess.run([mmcl, "synth", d, "--size", str(a.size),
                        "--optical-bands", "13", "--sar-bands", "2",
                        "--shared", "2", "--seed", "1", "-q", "--overwrite"],
                       check=True)
    model = os.path.join(a.work, "m%s.mmcl" % a.hidden.replace(",", "_"))
    if not os.path.exists(model):
        small = os.path.join(a.work, "s512")
        if not os.path.exists(os.path.join(small, "sar.tif")):
            subprocess.run([mmcl, "synth", small, "--size", "512",
                            "--optical-bands", "13", "--sar-bands", "2",
                            "--shared", "2", "--seed", "1", "-q"], check=True)
        m18 = model + ".k18"
        subprocess.run([mmcl, "train", small + "/optical.tif",
                        small + "/sar.tif", m18, "--objective", "clip",
                        "--encoder", "mlp:" + a.hidden, "--dim", "18", "--patch",
                        "3", "--samples", "20000", "--epochs", "1", "--batch",
                        "1024", "-q", "--overwrite"], check=True)
        widen_model(m18, model, 64)

    out = os.path.join(a.work, "out.tif")
    args = ["embed", "-q", "--overwrite", "--config", "CPL_DEBUG", "MMCL",
            "--tile", str(a.tile), model, d + "/optical.tif",
            d + "/sar.tif", out]
    mpirun = [a.mpirun, "--oversubscribe", "--bind-to", "none", "-n"]
    runs = {
        "mmcl, 1 process, --threads 1": [mmcl] + args + ["--threads", "1"],
        "mmcl, 1 process, --threads 2 (one machine)":
            [mmcl] + args + ["--threads", "2"],
        "mpirun -n 2, --threads 1": mpirun + ["2", mmcl] + args +
            ["--threads", "1"],
    }
    res = {k: [] for k in runs}
    for r in range(a.repeat):
        for k, cmd in runs.items():
            res[k].append(run(cmd))
            print("round %d %-46s %.2f s" % (r + 1, k, res[k][-1][0]),
                  file=sys.stderr)

    blas, kernel = mmcl_blas(mmcl)
    mpx = a.size * a.size / 1e6
    print("CPU: %s, %d cores online; %s (openblas_get_corename: %s)" %
          (cpu_model(), os.cpu_count(), blas, kernel))
    print("Scene %d^2 (%.2f Mpx), tile %d, 64-band embedding (CLIP, MLP %s); "
          "medians of %d; load average at the end: %.2f\n" %
          (a.size, mpx, a.tile, a.hidden, a.repeat, os.getloadavg()[0]))
    print("| run | wall (s) | CPU (s) | Mpx/s |")
    print("|---|---:|---:|---:|")
    med, cpu = {}, {}
    for k in runs:
        med[k] = statistics.median(r[0] for r in res[k])
        cpu[k] = statistics.median(r[3] for r in res[k])
        print("| %s | %.2f | %.2f | %.3f |" % (k, med[k], cpu[k],
                                              mpx / med[k]))
    one = "mmcl, 1 process, --threads 1"
    two = "mpirun -n 2, --threads 1"
    thr = "mmcl, 1 process, --threads 2 (one machine)"
    print("\nparallel efficiency at 2 ranks: %.1f %% by wall time "
          "(T1 / (2 T2)), %.1f %% by CPU time (CPU1 / CPU2: the work added "
          "by the second rank, what a quiet machine would show); "
          "2 ranks / 1 process with 2 threads: %.2fx the wall time, %.2fx "
          "the CPU time" % (100 * med[one] / (2 * med[two]),
                             100 * cpu[one] / cpu[two], med[two] / med[thr],
                             cpu[two] / cpu[thr]))
    # Traffic: rank 0 counts what each rank sent it.
    tr = [t for r in res["mpirun -n 2, --threads 1"] for t in r[2]]
    if tr:
        rank, tiles, nbytes, reqs = tr[0]
        px = tiles * a.tile * a.tile / 1e6  # interior tiles (4096 / 256)
        sent = nbytes + 4 * reqs
        print("rank 1 computed %d tiles (%.2f Mpx): sent %.1f MB of tiles "
              "and %d requests = %.2f MB per Mpx; received %d answers (%d "
              "bytes) = %.1f bytes per Mpx; rank 0 received the same %.2f "
              "MB per Mpx of rank 1's pixels and sent the answers" %
              (tiles, px, nbytes / 1e6, reqs, sent / 1e6 / px, reqs, 4 * reqs,
               4 * reqs / px, sent / 1e6 / px))
    ws = [r[1] for r in res["mpirun -n 2, --threads 1"] if r[1]]
    ws1 = [r[1] for r in res["mmcl, 1 process, --threads 1"] if r[1]]
    if ws:
        print("writer alone (rank 0's thread CPU seconds writing the tiles, "
              "ZSTD compression included): %.2f s for %.2f Mpx = %.1f Mpx/s "
              "(one process: %.2f s)" % (statistics.median(ws), mpx,
                                         mpx / statistics.median(ws),
                                         statistics.median(ws1)))
    print("compute per rank (1 process, 1 thread): %.3f Mpx/s of wall "
          "time, %.3f Mpx per CPU second" % (mpx / med[one], mpx / cpu[one]))


if __name__ == "__main__":
    main()
