#!/usr/bin/env python3
"""MPI benchmark (bench/README.md, "MPI"; docs/mpi.md): strong scaling of
one `mmcl embed` of a 4096^2 scene on 1 and 2 MPI ranks on this machine,
side by side with what a user would run instead on one machine (the same
program with 2 worker threads), where each rank's time goes, the bytes
each rank sends and receives per megapixel, and the writing side measured
alone (GDAL writing the same pixels with mmcl's creation options, with 1
and 2 compression threads, and the statistics pass).

Scene and model as bench/bench_embed.py: `mmcl synth --size N
--optical-bands 13 --sar-bands 2 --shared 2 --seed 1`. Models (--models):
`clip64`, CLIP, MLP on 3 x 3 patches (hidden 64, 64 by default, --hidden),
64 output dimensions, for runs of minutes on a shared 2-core machine;
`cca8`, the default of `mmcl train` (closed-form CCA, 8 dimensions), the
common case.

    /usr/bin/python3 bench/bench_mpi.py --build build --work /tmp/bm \
        --size 4096 --repeat 3 --models clip64,cca8

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
from bench_embed import cpu_model, mmcl_blas, widen_model  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1")
TRAFFIC_RE = re.compile(r"rank (\d+): (\d+) tiles, (\d+) bytes of tiles and "
                        r"(\d+) requests received from it")
# Each rank's account of its share (dist.c, CPL_DEBUG MMCL).
RANK_RE = re.compile(r"rank (\d+) of \d+: (\d+) tiles computed, ([\d.]+) s of "
                     r"wall time; CPU seconds: workers ([\d.]+), main thread "
                     r"([\d.]+) \(writing the tiles ([\d.]+)\), other "
                     r"threads \(GDAL's compression, MPI\) (-?[\d.]+)")
# Rank 0's threads (map_compute.c): read, patches, encoders, compose, write.
TIMING_RE = re.compile(r"embed timing, CPU seconds of the threads: read "
                       r"([\d.]+), patches ([\d.]+), encoders ([\d.]+) .*"
                       r"compose ([\d.]+), write ([\d.]+)")
DONE_RE = re.compile(r"completed: CPU seconds of this thread: last blocks "
                     r"([\d.]+), statistics of \d+ bands ([\d.]+), closing "
                     r"([\d.]+); statistics in ([\d.]+) s of wall time")


def run(cmd):
    """(wall s, CPU s of every process, traffic, per-rank accounts,
    statistics s, rank 0's compute and write CPU s) of @p cmd."""
    t0 = time.time()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True,
                       text=True, env=ENV)
    if p.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(cmd), p.stderr[-2000:]))
    wall = time.time() - t0
    cpu = sum(float(re.search(r"%s time \(seconds\): ([\d.]+)" % k,
                              p.stderr).group(1)) for k in ("User", "System"))
    traffic = [tuple(int(v) for v in m.groups())
               for m in TRAFFIC_RE.finditer(p.stderr)]
    ranks = {int(m.group(1)): [float(v) for v in m.groups()[1:]]
             for m in RANK_RE.finditer(p.stderr)}
    done = DONE_RE.search(p.stderr)
    # The statistics pass: wall s.
    stats = float(done.group(4)) if done else None
    t = TIMING_RE.search(p.stderr)
    t = [float(v) for v in t.groups()] if t else None
    timing = (sum(t[:4]), t[4]) if t else None
    return wall, cpu, traffic, ranks, stats, timing


def make_model(mmcl, work, kind, hidden):
    """The model file of @p kind, trained once on a 512^2 scene."""
    small = os.path.join(work, "s512")
    if not os.path.exists(os.path.join(small, "sar.tif")):
        subprocess.run([mmcl, "synth", small, "--size", "512",
                        "--optical-bands", "13", "--sar-bands", "2",
                        "--shared", "2", "--seed", "1", "-q"], check=True)
    if kind == "cca8":
        model = os.path.join(work, "cca8.mmcl")
        if not os.path.exists(model):
            subprocess.run([mmcl, "train", small + "/optical.tif",
                            small + "/sar.tif", model, "--objective", "cca",
                            "--dim", "8", "-q", "--overwrite"], check=True)
        return model, 8, "CCA, 8 dimensions"
    model = os.path.join(work, "m%s.mmcl" % hidden.replace(",", "_"))
    if not os.path.exists(model):
        m18 = model + ".k18"
        subprocess.run([mmcl, "train", small + "/optical.tif",
                        small + "/sar.tif", m18, "--objective", "clip",
                        "--encoder", "mlp:" + hidden, "--dim", "18",
                        "--patch", "3", "--samples", "20000", "--epochs", "1",
                        "--batch", "1024", "-q", "--overwrite"], check=True)
        widen_model(m18, model, 64)
    return model, 64, "CLIP, MLP %s, 64 dimensions" % hidden


def writer_alone(src, out, tile, threads):
    """GDAL writing the pixels of @p src (its first row of tiles, written
    into every row of tiles of a raster of its size) with mmcl's creation
    options for a float map and NUM_THREADS=@p threads; then the
    statistics pass of every band, as mmcl does before closing. Returns
    (Mpx, write wall s, write CPU s, statistics CPU s)."""
    from osgeo import gdal
    gdal.UseExceptions()
    s = gdal.Open(src)
    W, H, B = s.RasterXSize, s.RasterYSize, s.RasterCount
    row = s.ReadRaster(0, 0, W, tile)
    s = None
    co = ["TILED=YES", "BLOCKXSIZE=%d" % tile, "BLOCKYSIZE=%d" % tile,
          "COMPRESS=ZSTD", "ZSTD_LEVEL=1", "PREDICTOR=3", "BIGTIFF=IF_SAFER",
          "INTERLEAVE=BAND"]
    if threads > 1:
        co.append("NUM_THREADS=%d" % threads)
    w0, c0 = time.time(), time.process_time()
    d = gdal.GetDriverByName("GTiff").Create(out, W, H, B, gdal.GDT_Float32,
                                             co)
    for y in range(0, H - tile + 1, tile):
        d.WriteRaster(0, y, W, tile, row)
        d.FlushCache()
    wall, cpu = time.time() - w0, time.process_time() - c0
    c1 = time.process_time()
    for b in range(1, B + 1):
        d.GetRasterBand(b).ComputeStatistics(False)
    st = time.process_time() - c1
    d = None
    gdal.Unlink(out)
    return W * (H - H % tile) / 1e6, wall, cpu, st


def bench_model(a, mmcl, kind):
    model, k, what = make_model(mmcl, a.work, kind, a.hidden)
    d = os.path.join(a.work, "s%d" % a.size)
    out = os.path.join(a.work, "out_%s.tif" % kind)
    args = ["embed", "-q", "--overwrite", "--config", "CPL_DEBUG", "MMCL",
            "--tile", str(a.tile), model, d + "/optical.tif",
            d + "/sar.tif", out]
    mpirun = [a.mpirun, "--oversubscribe", "--bind-to", "none", "-n"]
    one = "mmcl, 1 process, --threads 1"
    thr = "mmcl, 1 process, --threads 2 (one machine)"
    two = "mpirun -n 2, --threads 1 per rank"
    runs = {one: [mmcl] + args + ["--threads", "1"],
            thr: [mmcl] + args + ["--threads", "2"],
            two: mpirun + ["2", mmcl] + args + ["--threads", "1"]}
    if a.one_writer_thread:
        # Rank 0 compressing on its main thread, as before (the user's -co
        # comes after mmcl's defaults).
        runs["mpirun -n 2, -co NUM_THREADS=1 (one writer thread)"] = \
            runs[two] + ["-co", "NUM_THREADS=1"]
    pin1 = "1 core (taskset -c 0), --threads 1"
    pin2 = "mpirun -n 2 --bind-to core, --threads 1 per rank"
    if a.pinned:
        # Strong scaling by cores: the one-process program keeps more than
        # one core busy (its compression threads), so that on a 2-core
        # machine it leaves a second rank no core of its own. Pinned, the
        # program gets one core (all its threads) and each rank one.
        runs[pin1] = ["taskset", "-c", "0", mmcl] + args + ["--threads", "1"]
        runs[pin2] = [a.mpirun, "--bind-to", "core", "-n", "2", mmcl] + \
            args + ["--threads", "1"]
    res = {r: [] for r in runs}
    for i in range(a.repeat):
        for r, cmd in runs.items():
            res[r].append(run(cmd))
            print("%s round %d %-40s %.2f s" % (kind, i + 1, r,
                                                res[r][-1][0]),
                  file=sys.stderr)
    mpx = a.size * a.size / 1e6
    print("\n### %s (%s), %d^2 (%.2f Mpx), tile %d, medians of %d; load "
          "average at the end: %.2f\n" % (kind, what, a.size, mpx, a.tile,
                                          a.repeat, os.getloadavg()[0]))
    print("| run | wall (s) | CPU (s) | Mpx/s (wall) |")
    print("|---|---:|---:|---:|")
    med, cpu = {}, {}
    for r in runs:
        med[r] = statistics.median(x[0] for x in res[r])
        cpu[r] = statistics.median(x[1] for x in res[r])
        print("| %s | %.2f | %.2f | %.3f |" % (r, med[r], cpu[r],
                                              mpx / med[r]))
    print("\nparallel efficiency at 2 ranks: %.1f %% by wall time "
          "(T1 / (2 T2)); CPU seconds 2 ranks / 1 process: %.2f (the work "
          "the second rank adds); 2 ranks / 1 process with 2 threads: "
          "%.2fx the wall time" % (100 * med[one] / (2 * med[two]),
                                    cpu[two] / cpu[one],
                                    med[two] / med[thr]))
    if a.pinned:
        print("\nparallel efficiency at 2 ranks, pinned (one core for the "
              "program, one core per rank): %.1f %% by wall time "
              "(T1 / (2 T2)); CPU seconds 2 ranks / 1 process: %.2f" %
              (100 * med[pin1] / (2 * med[pin2]), cpu[pin2] / cpu[pin1]))
    # Where each rank's time went (medians over the rounds).
    print("\n| run | rank | tiles | wall (s) | workers CPU (s) | main "
          "thread CPU (s) | of which writing | other threads CPU (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        ranks = sorted({q for x in res[r] for q in x[3]})
        for q in ranks:
            v = [statistics.median(x[3][q][i] for x in res[r] if q in x[3])
                 for i in range(6)]
            print("| %s | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f |" %
                  (r, q, v[0], v[1], v[2], v[3], v[4], v[5]))
    for r in runs:
        st = [x[4] for x in res[r] if x[4] is not None]
        if st:
            print("\nstatistics pass (rank 0), %s: %.2f s of wall time" %
                  (r, statistics.median(st)))
    tr = [t for x in res[two] for t in x[2]]
    if tr:
        rank, tiles, nbytes, reqs = tr[0]
        px = tiles * a.tile * a.tile / 1e6  # interior tiles
        print("traffic: rank 1 computed %d tiles (%.2f Mpx): sent %.1f MB "
              "of tiles and %d requests = %.2f MB per Mpx; received %d "
              "answers = %.1f bytes per Mpx; rank 0 received the same per "
              "Mpx of rank 1's pixels and sent the answers" %
              (tiles, px, nbytes / 1e6, reqs, (nbytes + 4 * reqs) / 1e6 / px,
               reqs, 8 * reqs / px))
    if a.skip_writer:
        return
    print("\nthe writing side alone (GDAL, mmcl's creation options, %d "
          "bands):\n" % k)
    print("| compression threads | Mpx | wall (s) | CPU (s) | Mpx per CPU s "
          "| Mpx/s (wall) | statistics CPU (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in (1, 2):
        m, w, c, s = writer_alone(out, os.path.join(a.work, "w.tif"), a.tile,
                                  n)
        print("| %d | %.2f | %.2f | %.2f | %.3f | %.3f | %.2f |" %
              (n, m, w, c, m / c, m / w, s))
    tm = [x[5] for x in res[one] if x[5]]
    if tm:
        c = statistics.median(t[0] for t in tm)
        w = statistics.median(t[1] for t in tm)
        print("\n1 process, 1 thread, CPU seconds of its threads: computing "
              "(read, patches, encoders, compose) %.2f = %.3f Mpx per CPU s; "
              "writing (compression, statistics, closing) %.2f = %.3f Mpx "
              "per CPU s" % (c, mpx / c, w, mpx / w))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE),
                                                    "build"))
    ap.add_argument("--work", default="/tmp/mmcl-bench-mpi")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--models", default="clip64,cca8",
                    help="clip64 (64 dimensions) and/or cca8 (8)")
    ap.add_argument("--pinned", action="store_true",
                    help="also the program on one core (taskset -c 0) and "
                    "2 ranks bound to one core each: strong scaling by "
                    "cores")
    ap.add_argument("--one-writer-thread", action="store_true",
                    help="also mpirun -n 2 with -co NUM_THREADS=1")
    ap.add_argument("--skip-writer", action="store_true",
                    help="leave out the writing side measured alone")
    ap.add_argument("--hidden", default="64,64",
                    help="clip64's hidden sizes (bench_embed.py: 256,256)")
    a = ap.parse_args()
    mmcl = os.path.abspath(os.path.join(a.build, "mmcl"))
    os.makedirs(a.work, exist_ok=True)
    d = os.path.join(a.work, "s%d" % a.size)
    if not os.path.exists(os.path.join(d, "sar.tif")):
        subprocess.run([mmcl, "synth", d, "--size", str(a.size),
                        "--optical-bands", "13", "--sar-bands", "2",
                        "--shared", "2", "--seed", "1", "-q", "--overwrite"],
                       check=True)
    blas, kernel = mmcl_blas(mmcl)
    mpi = subprocess.run([a.mpirun, "--version"], capture_output=True,
                         text=True).stdout.splitlines()
    print("CPU: %s, %d cores online; %s (openblas_get_corename: %s); %s" %
          (cpu_model(), os.cpu_count(), blas, kernel,
           mpi[0] if mpi else "mpirun ?"))
    for kind in a.models.split(","):
        bench_model(a, mmcl, kind)


if __name__ == "__main__":
    main()
