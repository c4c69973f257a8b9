#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark of the GDAL plugin gdal_MMCL.so: reading a whole lazy
embedding with gdal_translate against `mmcl embed` writing it, and reading
a zoomed-out (1/4 on each side) view of it through the plugin's overviews.

Generates once (in --workdir, reused when present) a synthetic scene of
--size x --size pixels with `mmcl synth` (8 optical bands, 4 SAR channels,
10 m, UTM 31N) and a CCA model (k = 8, 3 x 3 patches) trained on it, and
writes the lazy descriptor with `mmcl embed --lazy`. Then runs, --repeat
times each, rounds interleaved:

  mmcl embed       MODEL OPTICAL SAR out.tif           (every core)
  gdal_translate   DESC.mmcl.json out.tif  with the creation options mmcl
                   embed uses by default (tiled 256 x 256, ZSTD level 1,
                   floating-point predictor, band interleaving) and
                   compression threads = cores, so that both write the
                   same file
  gdal_translate   -outsize 1/4 1/4 DESC.mmcl.json: a zoomed-out read,
                   served by the factor-4 overview (computed from decimated
                   inputs, APPROXIMATE=YES), twice: with the inputs as
                   `mmcl synth` writes them (no overviews: decimating them
                   still decodes every input pixel), and with overviews
                   added to the inputs (gdaladdo -ro, an .ovr beside each,
                   as COG or pyramid-built inputs have), which the
                   decimated reads then use

and prints the median wall time, CPU time and peak RSS of each, the ratios
the target is about (full read / mmcl embed <= 1.3; full read / overview
read >= 10), and checks that the lazily read pixels equal mmcl embed's.

Wall time: time.perf_counter() around the process; CPU and peak RSS:
os.wait4()'s ru_utime + ru_stime and ru_maxrss.

Run with Debian's python3 (python3-gdal, python3-numpy), after a build:
    /usr/bin/python3 bench/bench_plugin.py [--build build] [--size 4096]
        [--repeat 3] [--workdir /tmp/mmcl-bench-plugin]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_measured(argv, env):
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(argv), rc, err))
    return dict(wall=wall, cpu=ru.ru_utime + ru.ru_stime,
                rss=ru.ru_maxrss / 1024.0)


def run(argv, env):
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit("%s failed: %s" % (" ".join(argv), p.stderr))
    return p


def remove_ovr(path):
    if os.path.exists(path + ".ovr"):
        os.remove(path + ".ovr")


def input_overviews(paths, on):
    """Puts the inputs' .ovr files in place (on) or out of GDAL's sight."""
    for p in paths:
        if on and os.path.exists(p + ".ovr.off"):
            os.rename(p + ".ovr.off", p + ".ovr")
        if not on and os.path.exists(p + ".ovr"):
            os.rename(p + ".ovr", p + ".ovr.off")


def remove(path):
    for p in (path, path + ".aux.xml"):
        if os.path.exists(p):
            os.remove(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build folder holding mmcl and plugin/gdal_MMCL.so")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/mmcl-bench-plugin")
    args = ap.parse_args()

    mmcl = os.path.join(os.path.abspath(args.build), "mmcl")
    plugin_dir = os.path.join(os.path.abspath(args.build), "plugin")
    env = dict(os.environ, GDAL_DRIVER_PATH=plugin_dir)
    env.pop("OPENBLAS_NUM_THREADS", None)  # both use every core
    cores = os.cpu_count() or 1
    work = os.path.join(args.workdir, str(args.size))
    os.makedirs(work, exist_ok=True)
    opt = os.path.join(work, "optical.tif")
    sar = os.path.join(work, "sar.tif")
    model = os.path.join(work, "cca.mmcl")
    desc = os.path.join(work, "emb.mmcl.json")

    if not os.path.exists(opt):
        log("== mmcl synth --size %d" % args.size)
        run([mmcl, "synth", "-q", "--overwrite", "--size", str(args.size),
             "--seed", "3", work], env)
    if not os.path.exists(model):
        log("== mmcl train (cca, k = 8, 3 x 3 patches)")
        run([mmcl, "train", "-q", "--overwrite", "--objective", "cca",
             "--dim", "8", "--patch", "3", "--samples", "50000", opt, sar,
             model], env)
    run([mmcl, "embed", "-q", "--lazy", "--overwrite", model, opt, sar, desc],
        env)
    for path in (opt, sar):
        if not os.path.exists(path + ".ovr.off"):
            log("== gdaladdo -ro -r average %s" % os.path.basename(path))
            remove_ovr(path)
            run(["gdaladdo", "-q", "-ro", "-r", "average", "--config",
                 "COMPRESS_OVERVIEW", "DEFLATE", path, "2", "4", "8", "16"],
                env)
            os.rename(path + ".ovr", path + ".ovr.off")
    check = run([mmcl, "--check-plugin"], env).stdout
    log(check.strip())

    small = args.size // 4
    out_embed = os.path.join(work, "out_embed.tif")
    out_lazy = os.path.join(work, "out_lazy.tif")
    out_ovr = os.path.join(work, "out_overview.tif")
    # The creation options mmcl embed uses by default (src/core/writer.c), and
    # GDAL's compression threads: gdal_translate compresses on the thread
    # that reads, mmcl embed on its own commit thread.
    co = ["-co", "TILED=YES", "-co", "BLOCKXSIZE=256", "-co",
          "BLOCKYSIZE=256", "-co", "COMPRESS=ZSTD", "-co", "ZSTD_LEVEL=1",
          "-co", "PREDICTOR=3", "-co", "INTERLEAVE=BAND",
          "-co", "BIGTIFF=IF_SAFER", "-co", "NUM_THREADS=%d" % cores]
    ovr_argv = ["gdal_translate", "-q", "-outsize", str(small), str(small),
                *co, desc, out_ovr]
    # (name, output, argv, inputs with overviews)
    configs = [
        ("mmcl embed (writes)", out_embed,
         [mmcl, "embed", "-q", "--overwrite", model, opt, sar, out_embed],
         False),
        ("gdal_translate lazy (full)", out_lazy,
         ["gdal_translate", "-q", *co, desc, out_lazy], False),
        ("gdal_translate lazy (1/4 overview)", out_ovr, ovr_argv, False),
        ("gdal_translate lazy (1/4 overview, inputs with overviews)",
         out_ovr, ovr_argv, True),
    ]
    results = {name: [] for name, _, _, _ in configs}
    for r in range(args.repeat):
        for name, out, argv, with_ovr in configs:
            input_overviews((opt, sar), with_ovr)
            remove(out)
            subprocess.run(["sync"])
            m = run_measured(argv, env)
            results[name].append(m)
            log("  round %d %-58s %7.2f s wall %7.2f s cpu %7.0f MB" %
                (r + 1, name, m["wall"], m["cpu"], m["rss"]))

    med = {name: {k: statistics.median(x[k] for x in v)
                  for k in ("wall", "cpu", "rss")}
           for name, v in results.items()}
    names = [c[0] for c in configs]
    input_overviews((opt, sar), False)
    full, embed = med[names[1]], med[names[0]]
    ovr, ovr2 = med[names[2]], med[names[3]]

    # The lazily read pixels equal mmcl embed's.
    a = gdal.Open(out_embed).ReadAsArray()
    b = gdal.Open(out_lazy).ReadAsArray()
    same = np.array_equal(np.isnan(a), np.isnan(b))
    ok = np.isfinite(a)
    diff = float(np.max(np.abs(a[ok] - b[ok]))) if ok.any() else 0.0

    print("GDAL plugin: %d x %d lazy embedding (k = 8, 3 x 3 patches, 8 "
          "optical + 4 SAR bands), %d cores, median of %d" %
          (args.size, args.size, cores, args.repeat))
    print()
    print("| run | wall (s) | CPU (s) | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    for name in names:
        m = med[name]
        print("| %s | %.2f | %.2f | %.0f |" % (name, m["wall"], m["cpu"],
                                               m["rss"]))
    print()
    r1 = full["wall"] / embed["wall"]
    r2 = full["wall"] / ovr["wall"]
    r3 = full["wall"] / ovr2["wall"]
    print("full read / mmcl embed: %.2fx (target <= 1.3x) %s" %
          (r1, "ok" if r1 <= 1.3 else "MISSED"))
    print("full read / overview read, inputs without overviews: %.1fx "
          "(target >= 10x) %s" % (r2, "ok" if r2 >= 10 else "MISSED"))
    print("full read / overview read, inputs with overviews: %.1fx "
          "(target >= 10x) %s" % (r3, "ok" if r3 >= 10 else "MISSED"))
    print("lazy pixels vs mmcl embed: max abs diff %.3g, nodata %s" %
          (diff, "identical" if same else "DIFFERENT"))


if __name__ == "__main__":
    main()
