#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark of `mmcl coreg` against scikit-image's phase_cross_correlation.

Accuracy and time on the same blocks of synthetic scenes whose SAR is
misregistered by a known amount (`mmcl synth --sar-shift 1.5,-0.7` and
`--sar-shift-field 2`, 512 x 512 px, 8 optical bands, 4 SAR channels,
sharp land-cover edges): for each 64 x 64 block of the optical grid, the
shift mmcl measures and the shift phase_cross_correlation (upsample_factor
20, sub-pixel) measures between the optical block and the SAR block, the
way an analyst would call it on one band of each: optical band 1 against
VV, and the mean of the optical bands against the mean of the SAR
channels. And the other similarity design 4.5 names, mutual information,
as a NumPy prototype on the same blocks and shifts (the first principal
component of each modality, 32 x 32 bins, a parabola per axis: see
mi_field). Errors against the truth (shift_truth.tif averaged over the
block): the median over every block, over the blocks mmcl calls confident
(the same blocks for every tool), the share within 0.25 px, and the error
of the global shift (the median over the blocks; mmcl's own global shift
for mmcl). Times: median wall time of --repeat runs; mmcl is timed as the
process (reading and writing included), phase_cross_correlation on the
blocks already in memory (reading excluded: in its favour).

Then the time of a 10980 x 10980 scene's shift field (a Sentinel-2 tile at
10 m: 4 optical bands, 2 SAR channels, `mmcl synth --size 10980`, made once
in --workdir): median of --repeat runs of `mmcl coreg`, on every core.

Every run records the CPU and the OpenBLAS kernel (mmcl --version).

    /usr/bin/python3 bench/bench_coreg.py --build build [--repeat 3]
        [--workdir /tmp/mmcl-bench-coreg] [--no-big] [--big-repeat 3]
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from osgeo import gdal
from skimage.registration import phase_cross_correlation

gdal.UseExceptions()

SCENE = ["--size", "512", "--class-blend", "0", "--classes", "64"]
BLOCK = 64
BIG = 10980


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_model():
    """The CPU's name, family and model (/proc/cpuinfo), and its AVX-512
    flags."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                k, _, v = line.partition(":")
                info[k.strip()] = v.strip()
    except OSError:
        return platform.processor() or "unknown"
    flags = info.get("flags", "").split()
    return "%s (family %s, model %s; %s)" % (
        info.get("model name", "unknown"), info.get("cpu family", "?"),
        info.get("model", "?"),
        " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile")
                 if f in flags) or "no AVX2")


def mmcl_run(mmcl, *args):
    p = subprocess.run([mmcl] + [str(a) for a in args], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError("mmcl %s: %s" % (" ".join(map(str, args)),
                                            p.stderr))
    return p


def cpu_seconds():
    """CPU time of this process and of its waited-for children."""
    own = time.process_time()
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + ch.ru_utime + ch.ru_stime


def timed(fn, repeat):
    """Median wall and CPU seconds of @p repeat calls, and the last result.
    On a shared machine the wall time is inflated by the others' work; the
    CPU time is the better guide."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        c0, t0 = cpu_seconds(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    return (statistics.median(walls), statistics.median(cpus)), out


def block_truth(folder):
    t = gdal.Open(os.path.join(folder, "shift_truth.tif")).ReadAsArray()
    nb = t.shape[1] // BLOCK
    return t[:, :nb * BLOCK, :nb * BLOCK].reshape(
        2, nb, BLOCK, nb, BLOCK).mean(axis=(2, 4))


def skimage_field(opt, sar, combine, repeat):
    """Per block: phase_cross_correlation of one optical image against one
    SAR image. skimage returns the (row, col) shift that registers the SAR
    (moving) onto the optical (reference); the SAR shows the optical's
    ground at (x + dx, y + dy), so (dx, dy) = -(col, row)."""
    if combine == "band1":
        a, b = opt[0], sar[0]
    else:
        a, b = opt.mean(axis=0), sar.mean(axis=0)
    nb = a.shape[0] // BLOCK

    def run():
        out = np.full((2, nb, nb), np.nan)
        for j in range(nb):
            for i in range(nb):
                ra = a[j * BLOCK:(j + 1) * BLOCK, i * BLOCK:(i + 1) * BLOCK]
                rb = b[j * BLOCK:(j + 1) * BLOCK, i * BLOCK:(i + 1) * BLOCK]
                s, _, _ = phase_cross_correlation(ra, rb, upsample_factor=20)
                out[0, j, i], out[1, j, i] = -s[1], -s[0]
        return out
    return timed(run, repeat)


def first_pc(x):
    """The first principal component of the bands x (B, H, W)."""
    v = x.reshape(x.shape[0], -1)
    v = (v - v.mean(1, keepdims=True)) / (v.std(1, keepdims=True) + 1e-12)
    w, vec = np.linalg.eigh(v @ v.T)
    return (vec[:, -1] @ v).reshape(x.shape[1:])


def mutual_information(a, b, bins=32):
    h, _, _ = np.histogram2d(a.ravel(), b.ravel(), bins=bins)
    p = h / h.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())


def mi_field(opt, sar, search, repeat):
    """The other candidate measure of design 4.5, as a NumPy prototype:
    mutual information (32 x 32 bins) between the first principal
    component of the optical block and that of the SAR, maximised over
    the same integer shifts as mmcl, sub-pixel by a parabola per axis."""
    nb = opt.shape[1] // BLOCK
    m = search

    def run():
        out = np.full((2, nb, nb), np.nan)
        for j in range(nb):
            for i in range(nb):
                y0, x0 = j * BLOCK, i * BLOCK
                if (y0 - m < 0 or x0 - m < 0 or y0 + BLOCK + m > opt.shape[1]
                        or x0 + BLOCK + m > opt.shape[2]):
                    continue
                a = first_pc(opt[:, y0:y0 + BLOCK, x0:x0 + BLOCK])
                b = first_pc(sar[:, y0 - m:y0 + BLOCK + m,
                                 x0 - m:x0 + BLOCK + m])
                s = np.empty((2 * m + 1, 2 * m + 1))
                for sy in range(-m, m + 1):
                    for sx in range(-m, m + 1):
                        s[sy + m, sx + m] = mutual_information(
                            a, b[m + sy:m + sy + BLOCK, m + sx:m + sx + BLOCK])
                by, bx = np.unravel_index(np.argmax(s), s.shape)
                if by in (0, 2 * m) or bx in (0, 2 * m):
                    continue
                f = s[by, bx - 1:bx + 2]
                g = s[by - 1:by + 2, bx]
                ox = 0.5 * (f[0] - f[2]) / (f[0] - 2 * f[1] + f[2])
                oy = 0.5 * (g[0] - g[2]) / (g[0] - 2 * g[1] + g[2])
                out[0, j, i] = bx - m + np.clip(ox, -0.5, 0.5)
                out[1, j, i] = by - m + np.clip(oy, -0.5, 0.5)
        return out
    return timed(run, repeat)


def errors(field, truth, confident, global_shift=None):
    err = np.hypot(field[0] - truth[0], field[1] - truth[1])
    if global_shift is None:
        global_shift = (np.nanmedian(field[0]), np.nanmedian(field[1]))
    g_truth = (np.median(truth[0]), np.median(truth[1]))
    return {
        "median_all": float(np.nanmedian(err)),
        "median_confident": float(np.nanmedian(err[confident])),
        "within_025": float(np.mean(np.nan_to_num(err, nan=9.0) <= 0.25)),
        "global_error": float(np.hypot(global_shift[0] - g_truth[0],
                                       global_shift[1] - g_truth[1])),
    }


def accuracy(mmcl, work, repeat):
    rows = []
    for name, shift in (("constant 1.5,-0.7", ["--sar-shift", "1.5,-0.7"]),
                        ("smooth field 2 px", ["--sar-shift-field", "2"])):
        folder = os.path.join(work, name.split()[0])
        if not os.path.exists(os.path.join(folder, "synth.json")):
            mmcl_run(mmcl, "synth", "-q", *SCENE, *shift, folder)
        truth = block_truth(folder)
        out = os.path.join(work, name.split()[0] + "_coreg.tif")
        opt_p = os.path.join(folder, "optical.tif")
        sar_p = os.path.join(folder, "sar.tif")

        def run_mmcl():
            p = mmcl_run(mmcl, "coreg", "-q", "--json", "--overwrite",
                         opt_p, sar_p, out)
            return json.loads(p.stdout)
        t_mmcl, report = timed(run_mmcl, repeat)
        field = gdal.Open(out).ReadAsArray()
        confident = field[4] >= 0.5
        e = errors(field[:2], truth, confident,
                   (report["shift"]["dx"], report["shift"]["dy"]))
        rows.append((name, "mmcl coreg (CCA, all bands)", t_mmcl, e,
                     int(confident.sum()), confident.size))
        opt = gdal.Open(opt_p).ReadAsArray().astype(np.float64)
        sar = gdal.Open(sar_p).ReadAsArray().astype(np.float64)
        for combine, label in (("band1", "phase_cross_correlation B1 vs VV"),
                               ("mean", "phase_cross_correlation band means")):
            t, f = skimage_field(opt, sar, combine, repeat)
            rows.append((name, label, t, errors(f, truth, confident),
                         int(confident.sum()), confident.size))
        t, f = mi_field(opt, sar, 4, repeat)
        rows.append((name, "mutual information, first PCs (NumPy)", t,
                     errors(f, truth, confident), int(confident.sum()),
                     confident.size))
    return rows


def big_scene(mmcl, work, repeat):
    folder = os.path.join(work, "big")
    if not os.path.exists(os.path.join(folder, "synth.json")):
        log("making the %d x %d scene (once) ..." % (BIG, BIG))
        mmcl_run(mmcl, "synth", "-q", "--size", BIG, "--optical-bands", 4,
                 "--sar-bands", 2, "--class-blend", 0, "--classes", 64,
                 "--sar-shift", "1.5,-0.7", folder)
    out = os.path.join(work, "big_coreg.tif")
    t, report = timed(lambda: json.loads(mmcl_run(
        mmcl, "coreg", "-q", "--json", "--overwrite",
        os.path.join(folder, "optical.tif"), os.path.join(folder, "sar.tif"),
        out).stdout), repeat)
    return t, report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/mmcl-bench-coreg")
    ap.add_argument("--no-big", action="store_true")
    ap.add_argument("--big-repeat", type=int, default=3)
    a = ap.parse_args()
    mmcl = os.path.abspath(os.path.join(a.build, "mmcl"))
    os.makedirs(a.workdir, exist_ok=True)
    version = mmcl_run(mmcl, "--version").stdout.strip()
    import skimage
    print("CPU: %s, %d cores" % (cpu_model(), os.cpu_count()))
    print("mmcl --version: %s" % version.replace("\n", "; "))
    print("scikit-image %s, GDAL %s, %s" % (skimage.__version__,
                                           gdal.__version__,
                                           time.strftime("%Y-%m-%d %H:%M UTC",
                                                         time.gmtime())))
    print("machine load (1, 5, 15 min): %.1f %.1f %.1f" % os.getloadavg())
    rows = accuracy(mmcl, a.workdir, a.repeat)
    print("\n| scene | tool | median error, all blocks (px) | median error, "
          "confident blocks (px) | blocks within 0.25 px | global shift "
          "error (px) | wall (s) | CPU (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for scene, tool, t, e, nconf, n in rows:
        print("| %s | %s | %.3f | %.3f | %.0f %% | %.3f | %.2f | %.2f |" % (
            scene, tool, e["median_all"], e["median_confident"],
            100 * e["within_025"], e["global_error"], t[0], t[1]))
    for scene in sorted({r[0] for r in rows}):
        mm = [r for r in rows if r[0] == scene and r[1].startswith("mmcl")][0]
        for r in rows:
            if r[0] == scene and r is not mm:
                print("%s: %s / mmcl median error (confident blocks): %.1fx, "
                      "CPU time %.2fx" % (scene, r[1],
                                          r[3]["median_confident"] /
                                          mm[3]["median_confident"],
                                          r[2][1] / mm[2][1]))
        print("%s: %d of %d blocks confident for mmcl" % (scene, mm[4],
                                                          mm[5]))
    if not a.no_big:
        t, r = big_scene(mmcl, a.workdir, a.big_repeat)
        print("\n%d x %d scene (4 optical bands, 2 SAR): mmcl coreg %.1f s "
              "wall, %.1f s CPU (medians of %d), %d blocks, global shift "
              "%.3f, %.3f (truth 1.5, -0.7)" % (
                  BIG, BIG, t[0], t[1], a.big_repeat, r["blocks"]["total"],
                  r["shift"]["dx"], r["shift"]["dy"]))
        print("machine load (1, 5, 15 min): %.1f %.1f %.1f" % os.getloadavg())


if __name__ == "__main__":
    main()
