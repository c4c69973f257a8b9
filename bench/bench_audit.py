# SPDX-License-Identifier: MIT
"""mmcl audit of a 64-band int8 embedding against mmcl infoloss of a model,
on the same synthetic scene: wall time, CPU time and peak RSS.

Generates once (in --workdir, reused when present) `mmcl synth --size N
--seed 3`, a CCA model (k = 8, 3 x 3 patches), its joint embedding map, and
from it a 64-band product-like raster as the Satellite Embedding dataset
ships one: the 8 dimensions projected to 64 by a fixed orthonormal matrix,
scaled to unit length, quantized to int8 codes sign(v) sqrt(|v|) 127.5
(-128 nodata, bands A00..A63, tiled, DEFLATE). Then runs, rounds
interleaved, `mmcl audit` of that raster and `mmcl infoloss` of the model
(the command an analyst runs on a model of their own), each --repeat times
as a separate process, and prints the medians side by side with the
machine, the CPU and the BLAS kernel (`mmcl --version`), and the CPU
seconds the rest of the machine used during each run (a shared machine
slows both).

    /usr/bin/python3 bench/bench_audit.py --size 4096 --repeat 3
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys

import numpy as np
from osgeo import gdal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_align import find_mmcl, run_measured, tool_output  # noqa: E402

gdal.UseExceptions()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_product(emb, out, rows=256):
    """The 64-band int8 raster of the 8-band embedding map @p emb, written
    by blocks of @p rows rows."""
    src = gdal.Open(emb)
    k, w, h = src.RasterCount, src.RasterXSize, src.RasterYSize
    q, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(64, k)))
    dst = gdal.GetDriverByName("GTiff").Create(
        out + ".part", w, h, 64, gdal.GDT_Byte,
        ["PIXELTYPE=SIGNEDBYTE", "TILED=YES", "COMPRESS=DEFLATE",
         "INTERLEAVE=PIXEL", "BIGTIFF=IF_SAFER"])
    dst.SetGeoTransform(src.GetGeoTransform())
    dst.SetProjection(src.GetProjection())
    for b in range(64):
        dst.GetRasterBand(b + 1).SetDescription("A%02d" % b)
        dst.GetRasterBand(b + 1).SetNoDataValue(-128)
    for y in range(0, h, rows):
        n = min(rows, h - y)
        e = src.ReadAsArray(0, y, w, n).astype(np.float64).reshape(k, -1)
        v = q @ e
        norm = np.linalg.norm(v, axis=0)
        ok = np.isfinite(norm) & (norm > 0)
        v = np.where(ok, v / np.where(ok, norm, 1), 0)
        c = np.clip(np.round(np.sign(v) * np.sqrt(np.abs(v)) * 127.5),
                    -127, 127)
        c[:, ~ok] = -128
        c = c.astype(np.int8).view(np.uint8).reshape(64, n, w)
        for b in range(64):
            dst.GetRasterBand(b + 1).WriteArray(c[b], 0, y)
    dst = None
    os.rename(out + ".part", out)


def ensure_data(mmcl, work, size):
    scene = os.path.join(work, "scene")
    opt, sar = os.path.join(scene, "optical.tif"), os.path.join(scene,
                                                                "sar.tif")
    model = os.path.join(work, "cca.mmcl")
    emb = os.path.join(work, "emb8.tif")
    product = os.path.join(work, "aef64.tif")
    steps = [
        (opt, [mmcl, "synth", "-q", scene, "--size", str(size), "--seed",
               "3"]),
        (model, [mmcl, "train", "-q", "--dim", "8", "--patch", "3", opt,
                 sar, model]),
        (emb, [mmcl, "embed", "-q", model, opt, sar, emb]),
    ]
    for path, argv in steps:
        if not os.path.exists(path):
            log("making " + path)
            subprocess.run(argv, check=True)
    if not os.path.exists(product):
        # In a process of its own: the measured runs are forked from this
        # one, and a child's peak RSS counts what its parent held at the
        # fork (the blocks of NumPy arrays made here).
        log("making " + product)
        subprocess.run([sys.executable, os.path.abspath(__file__),
                        "--make-product", emb, product], check=True)
    return opt, sar, model, product


def machine(mmcl):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [
        ("date", datetime.datetime.now().astimezone().strftime(
            "%Y-%m-%d %H:%M %Z")),
        ("machine", "%d cores, %s, Linux %s" % (os.cpu_count(), cpu,
                                                platform.release())),
        ("mmcl", tool_output([mmcl, "--version"]).replace("\n", "; ")),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mmcl")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="0")
    ap.add_argument("--workdir", default="/tmp/mmcl-bench-audit")
    ap.add_argument("--make-product", nargs=2, metavar=("EMB", "OUT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make_product:
        make_product(*args.make_product)
        return
    mmcl = find_mmcl(args.mmcl)
    os.makedirs(args.workdir, exist_ok=True)
    opt, sar, model, product = ensure_data(mmcl, args.workdir, args.size)
    runs = {
        "mmcl audit (64-band int8 embedding)":
            [mmcl, "audit", "-q", "--overwrite", "--threads", args.threads,
             product, opt, sar, os.path.join(args.workdir, "audit.tif")],
        "mmcl infoloss (cca k 8, patch 3)":
            [mmcl, "infoloss", "-q", "--overwrite", "--threads",
             args.threads, model, opt, sar,
             os.path.join(args.workdir, "infoloss.tif")],
    }
    res = {name: [] for name in runs}
    for r in range(args.repeat):
        for name, argv in runs.items():
            m = run_measured(argv)
            if m["rc"] != 0:
                raise SystemExit("%s failed (%d)" % (name, m["rc"]))
            log("round %d %s: %.2f s, %.0f MB" % (r + 1, name, m["wall"],
                                                   m["rss"]))
            res[name].append(m)
    for k, v in machine(mmcl):
        print("- %s: %s" % (k, v))
    print("- scene: mmcl synth --size %d --seed 3; threads %s; median of %d"
          % (args.size, args.threads, args.repeat))
    print()
    print("| run | wall (s) | CPU (s) | peak RSS (MB) | wall / infoloss | "
          "others' CPU (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    base = statistics.median(m["wall"] for m in
                             res["mmcl infoloss (cca k 8, patch 3)"])
    for name, ms in res.items():
        wall = statistics.median(m["wall"] for m in ms)
        print("| %s | %.2f | %.2f | %.0f | %.2f | %.1f |" % (
            name, wall, statistics.median(m["cpu"] for m in ms),
            statistics.median(m["rss"] for m in ms), wall / base,
            statistics.median(m["other"] for m in ms)))


if __name__ == "__main__":
    main()
