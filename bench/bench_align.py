#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark of `mmcl align` against gdalwarp and Orfeo ToolBox's Superimpose.

Generates once (in --workdir, reused when present) a synthetic optical grid
of --size x --size pixels at 10 m on UTM 31N (EPSG:32631) and a 2-band
float32 SAR (VV, VH in dB with speckle texture and a NaN hole, NaN declared
as nodata) covering the same area plus 500 m on EPSG:4326 at about 20 m.
Then resamples the SAR onto the optical grid with each tool, --repeat times
each (rounds interleaved, `sync` before each run), and prints the median
wall time, peak resident memory and CPU time of each in one table.

Wall time: time.perf_counter() around the process. Peak memory and CPU
time: ru_maxrss and ru_utime + ru_stime of os.wait4() on the process, which
on Linux include the descendants it waited for (otbcli_Superimpose is a
shell script that runs the launcher). The CPU the rest of the machine used
during the runs is measured from /proc/stat and reported: on a shared
machine, wall times are inflated and the CPU times are the better guide.

With --shift, also `mmcl align` correcting a SAR misregistration inside
the warp (docs/shift.md): with a shift field of mmcl coreg's format (a
smooth field of 64-pixel blocks, 1 in 10 of them below the confidence
threshold, so filled) and with a constant shift, against the same run
without one; the time ratio is printed (a shift costs the transform one
bilinear lookup per pixel, so it should cost a few percent at most).

--size and --threads take comma-separated lists (4096,8192 and 1,2): every
combination is measured and printed in one table, with each row's wall and
CPU time against gdalwarp's NaN propagation (-srcnodata None -wo
INIT_DEST=NaN) and its masked mode (-dstnodata nan) of the same size and
threads. --mmcl-ref runs another mmcl build beside the first, and compares
their outputs.

Then checks that every output is on the optical grid, compares the outputs
over the pixels valid in both, and (unless --no-exact-check) runs gdalwarp
and mmcl with -et 0 on a 1024 x 1024 window of the grid, where they should
agree exactly, and each with its default -et against that exact result.

Run with Debian's python3 (python3-gdal, python3-numpy):
    /usr/bin/python3 bench/bench_align.py [--size 8192] [--repeat 5]
    /usr/bin/python3 bench/bench_align.py --size 4096,8192 --threads 1,2 \
        --repeat 3 --no-otb --rows gdalwarp_best,mmcl_none,gdalwarp_nanprop
"""

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA_VERSION = 1  # bump when the generated data change
OPT_EPSG = 32631
SAR_EPSG = 4326
OPT_RES = 10.0
SAR_RES_M = 20.0
# Upper-left corner of the optical grid (UTM 31N, about 48.7 N 2.2 E).
OPT_X0, OPT_Y0 = 440000.0, 5400000.0


# ---- helpers ---------------------------------------------------------------

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_busy_seconds():
    """CPU seconds spent busy by the whole machine so far (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def wait_idle(max_wait):
    """Waits (up to max_wait s) for a second with the machine < 10 % busy."""
    t_end = time.monotonic() + max_wait
    ncpu = os.cpu_count() or 1
    while time.monotonic() < t_end:
        b0 = cpu_busy_seconds()
        time.sleep(1.0)
        b1 = cpu_busy_seconds()
        if b0 is None or (b1 - b0) / ncpu < 0.10:
            return True
    return False


def run_measured(argv, env=None, stderr_path=None):
    """Runs argv; returns dict(wall s, cpu s (user + sys of the process and
    its children), rss MB (peak), other: CPU seconds the rest of the machine
    used meanwhile, rc)."""
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    try:
        b0 = cpu_busy_seconds()
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                             env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        b1 = cpu_busy_seconds()
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if stderr_path:
            err.close()
    cpu = ru.ru_utime + ru.ru_stime
    other = max(0.0, (b1 - b0) - cpu) if b0 is not None else float("nan")
    return dict(wall=wall, cpu=cpu, rss=ru.ru_maxrss / 1024.0, other=other,
                rc=p.returncode)


def remove_raster(path):
    for p in (path, path + ".aux.xml"):
        if os.path.exists(p):
            os.remove(p)


def find_mmcl(arg):
    if arg:
        return os.path.abspath(arg)
    p = os.path.join(ROOT, "build", "mmcl")
    if os.access(p, os.X_OK):
        return p
    return shutil.which("mmcl")


def tool_output(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ---- data ------------------------------------------------------------------

def optical_grid(size):
    gt = (OPT_X0, OPT_RES, 0.0, OPT_Y0, 0.0, -OPT_RES)
    return gt


def srs_of(epsg):
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


def make_optical(path, size):
    """1-band UInt16, smooth fields plus noise, tiled DEFLATE; written in
    strips. Only its grid matters to align."""
    log(f"generating optical {size} x {size} -> {path}")
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(path, size, size, 1, gdal.GDT_UInt16,
                    ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2",
                     "BIGTIFF=IF_SAFER"])
    ds.SetGeoTransform(optical_grid(size))
    ds.SetProjection(srs_of(OPT_EPSG).ExportToWkt())
    band = ds.GetRasterBand(1)
    band.SetDescription("B04")
    rng = np.random.default_rng(1)
    x = np.arange(size, dtype=np.float32)
    strip = 512
    for y0 in range(0, size, strip):
        h = min(strip, size - y0)
        y = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
        v = (1500 + 400 * np.sin(x / 97.0) * np.cos(y / 131.0)
             + 300 * np.sin((x + 2 * y) / 401.0)
             + rng.normal(0, 50, (h, size)))
        band.WriteArray(np.clip(v, 1, 65535).astype(np.uint16), 0, y0)
    ds = None


def optical_footprint_lonlat(size):
    """Bounds (lon0, lat0, lon1, lat1) of the optical grid in EPSG:4326,
    from points along its edges."""
    ct = osr.CoordinateTransformation(srs_of(OPT_EPSG), srs_of(SAR_EPSG))
    ext = size * OPT_RES
    t = np.linspace(0, 1, 65)
    pts = []
    for f in t:
        pts += [(OPT_X0 + f * ext, OPT_Y0), (OPT_X0 + f * ext, OPT_Y0 - ext),
                (OPT_X0, OPT_Y0 - f * ext), (OPT_X0 + ext, OPT_Y0 - f * ext)]
    ll = np.array([ct.TransformPoint(x, y)[:2] for x, y in pts])
    return ll[:, 0].min(), ll[:, 1].min(), ll[:, 0].max(), ll[:, 1].max()


def make_sar(path, size):
    """2-band float32 on EPSG:4326 at ~20 m: VV, VH in dB (a smooth
    'landscape' plus gamma speckle, ENL 4.4), NaN nodata with a NaN hole;
    tiled 256, uncompressed; written in strips."""
    lon0, lat0, lon1, lat1 = optical_footprint_lonlat(size)
    margin = 500.0  # metres around the optical footprint
    latc = 0.5 * (lat0 + lat1)
    dlat = SAR_RES_M / 111320.0
    dlon = SAR_RES_M / (111320.0 * np.cos(np.radians(latc)))
    mlat = margin / 111320.0
    mlon = margin / (111320.0 * np.cos(np.radians(latc)))
    lon0, lon1, lat0, lat1 = lon0 - mlon, lon1 + mlon, lat0 - mlat, lat1 + mlat
    w = int(np.ceil((lon1 - lon0) / dlon))
    h = int(np.ceil((lat1 - lat0) / dlat))
    log(f"generating SAR {w} x {h} x 2 on EPSG:{SAR_EPSG} "
        f"({dlon:.3e} x {dlat:.3e} deg, ~{SAR_RES_M:g} m) -> {path}")
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(path, w, h, 2, gdal.GDT_Float32,
                    ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256",
                     "BIGTIFF=IF_SAFER"])
    ds.SetGeoTransform((lon0, dlon, 0.0, lat1, 0.0, -dlat))
    ds.SetProjection(srs_of(SAR_EPSG).ExportToWkt())
    for b, name in ((1, "VV"), (2, "VH")):
        ds.GetRasterBand(b).SetDescription(name)
        ds.GetRasterBand(b).SetNoDataValue(float("nan"))
    rng = np.random.default_rng(2)
    # Metres from the upper-left corner; hole: a 1.5 km disc at the centre.
    xm = np.arange(w, dtype=np.float64) * SAR_RES_M
    cx, cy, r = 0.5 * w * SAR_RES_M, 0.5 * h * SAR_RES_M, 1500.0
    strip = 256
    for y0 in range(0, h, strip):
        hh = min(strip, h - y0)
        ym = (np.arange(y0, y0 + hh, dtype=np.float64) * SAR_RES_M)[:, None]
        field = (np.sin(xm / 900.0 + 0.3 * np.sin(ym / 2700.0))
                 * np.cos(ym / 1300.0)
                 + 0.5 * np.sin((xm + ym) / 310.0)
                 + 0.25 * np.sin((xm - 2 * ym) / 97.0))
        hole = (xm - cx) ** 2 + (ym - cy) ** 2 < r * r
        for b in (1, 2):
            speckle = rng.gamma(4.4, 1 / 4.4, (hh, w))
            base = -11.0 + 3.0 * field if b == 1 else -18.0 + 2.5 * field
            v = (base + 10.0 * np.log10(speckle)).astype(np.float32)
            v[hole] = np.nan
            ds.GetRasterBand(b).WriteArray(v, 0, y0)
    ds = None


def ensure_data(workdir, size):
    os.makedirs(workdir, exist_ok=True)
    opt = os.path.join(workdir, f"optical_{size}.tif")
    sar = os.path.join(workdir, f"sar_{size}.tif")
    meta = os.path.join(workdir, f"data_{size}.json")
    want = {"version": DATA_VERSION, "size": size}
    try:
        with open(meta) as f:
            ok = json.load(f) == want
    except (OSError, ValueError):
        ok = False
    if ok and os.path.exists(opt) and os.path.exists(sar):
        log(f"reusing data in {workdir}")
        return opt, sar
    t0 = time.perf_counter()
    make_optical(opt, size)
    make_sar(sar, size)
    with open(meta, "w") as f:
        json.dump(want, f)
    log(f"data generated in {time.perf_counter() - t0:.1f} s")
    return opt, sar


def make_shift_field(path, opt, block=64):
    """A shift field as mmcl coreg writes it (docs/shift.md) on the grid of
    @p opt: a smooth dx, dy of up to 2 pixels, 1 block in 10 with
    confidence 0.2 (filled from its neighbours)."""
    o = gdal.Open(opt)
    gt = o.GetGeoTransform()
    nbx = -(-o.RasterXSize // block)
    nby = -(-o.RasterYSize // block)
    j, i = np.mgrid[0:nby, 0:nbx].astype(np.float64)
    dx = 1.5 + 0.5 * np.sin(i / 7.0) * np.cos(j / 11.0)
    dy = -0.7 + 0.5 * np.cos(i / 9.0 + j / 5.0)
    conf = np.where(np.random.default_rng(3).random((nby, nbx)) < 0.1, 0.2,
                    0.9)
    ds = gdal.GetDriverByName("GTiff").Create(path, nbx, nby, 5,
                                              gdal.GDT_Float32)
    ds.SetGeoTransform([gt[0], gt[1] * block, 0, gt[3], 0, gt[5] * block])
    ds.SetProjection(o.GetProjection())
    for b, (name, v) in enumerate(zip(
            ["dx", "dy", "dx_m", "dy_m", "confidence"],
            [dx, dy, dx * gt[1], dy * gt[5], conf])):
        band = ds.GetRasterBand(b + 1)
        band.SetDescription(name)
        band.SetNoDataValue(float("nan"))
        band.WriteArray(v)
    ds.SetMetadata({"MMCL_PRODUCT": "coreg", "MMCL_COREG_BLOCK": str(block),
                    "MMCL_COREG_DX": "1.5", "MMCL_COREG_DY": "-0.7"})
    ds = None


# ---- the runs --------------------------------------------------------------

def gdalwarp_argv(opt_ds, sar, out, threads, extra_co, et=None,
                  nodata=True, shift=(0.0, 0.0)):
    """gdalwarp onto the optical grid; with @p shift (dx, dy optical
    pixels) onto that grid moved by the shift, which is how gdalwarp
    corrects a constant misregistration (the output's geotransform is then
    set back to the optical grid)."""
    gt = opt_ds.GetGeoTransform()
    w, h = opt_ds.RasterXSize, opt_ds.RasterYSize
    xmin, ymax = gt[0] + shift[0] * gt[1], gt[3] + shift[1] * gt[5]
    xmax, ymin = xmin + w * gt[1], ymax + h * gt[5]
    argv = ["gdalwarp", "-q", "-overwrite", "-multi",
            "-wo", f"NUM_THREADS={threads}", "-r", "bilinear",
            "-t_srs", f"EPSG:{OPT_EPSG}",
            "-te", repr(xmin), repr(ymin), repr(xmax), repr(ymax),
            "-tr", repr(gt[1]), repr(-gt[5]),
            "-ot", "Float32", "-co", "TILED=YES"]
    if nodata:
        argv += ["-dstnodata", "nan"]
    else:
        # NaN marks the invalid without nodata masks: GDAL then takes its
        # unmasked bilinear kernel, and NaN propagates through the sums.
        argv += ["-srcnodata", "None", "-wo", "INIT_DEST=NaN"]
    for co in extra_co:
        argv += ["-co", co]
    if et is not None:
        argv += ["-et", str(et)]
    return argv + [sar, out]


def configs(args, mmcl, opt, sar, opt_ds, otb):
    wd = args.workdir
    t = args.threads
    out = lambda name: os.path.join(wd, f"out_{name}_{args.size}.tif")
    mmcl_none = [mmcl, "align", opt, sar, None, "-r", "bilinear",
                 "--threads", str(t), "-co", "COMPRESS=NONE",
                 "-co", "PREDICTOR=1", "--overwrite", "-q"]

    def mmcl_row(name, extra):
        argv = list(mmcl_none)
        argv[4] = out(name)
        return argv + extra

    shift_rows = []
    if args.shift:
        field = os.path.join(wd, f"shift_field_{args.size}.tif")
        make_shift_field(field, opt)
        shift_rows = [
            dict(key="mmcl_shift_field", tool="mmcl align",
                 settings="same as the row above, with --sar-shift-field "
                          "(64-pixel blocks, 10 % filled)",
                 out=out("mmcl_shift_field"),
                 argv=mmcl_row("mmcl_shift_field",
                               ["--sar-shift-field", field])),
            dict(key="mmcl_shift_const", tool="mmcl align",
                 settings="same, with --sar-shift 1.5,-0.7",
                 out=out("mmcl_shift_const"),
                 argv=mmcl_row("mmcl_shift_const",
                               ["--sar-shift", "1.5,-0.7"])),
            dict(key="gdalwarp_shift_const", tool="gdalwarp",
                 settings="same as best, -te moved by 1.5,-0.7 optical "
                          "pixels (the constant shift; no field possible)",
                 out=out("gdalwarp_shift_const"),
                 argv=gdalwarp_argv(opt_ds, sar, out("gdalwarp_shift_const"),
                                    t, [], shift=(1.5, -0.7))),
        ]
    ref_rows = []
    if args.mmcl_ref:
        argv = [args.mmcl_ref] + mmcl_row("mmcl_ref", [])[1:]
        ref_rows = [dict(key="mmcl_ref", tool="mmcl align (--mmcl-ref)",
                         settings="same as mmcl align -r bilinear, another "
                                  "build: " + args.mmcl_ref,
                         out=out("mmcl_ref"), argv=argv)]
    cfg = [
        dict(key="gdalwarp_best", tool="gdalwarp",
             settings=f"-multi -wo NUM_THREADS={t} -r bilinear, "
                      "uncompressed tiled",
             out=out("gdalwarp"),
             argv=gdalwarp_argv(opt_ds, sar, out("gdalwarp"), t, [])),
        dict(key="mmcl_none", tool="mmcl align",
             settings=f"-r bilinear --threads {t}, uncompressed tiled "
                      "(-co COMPRESS=NONE)",
             out=out("mmcl"),
             argv=mmcl_row("mmcl", [])),
    ] + ref_rows + shift_rows + [
        dict(key="gdalwarp_nanprop", tool="gdalwarp",
             settings="same, NaN propagation instead of nodata masks "
                      "(-srcnodata None -wo INIT_DEST=NaN, no -dstnodata)",
             out=out("gdalwarp_nanprop"),
             argv=gdalwarp_argv(opt_ds, sar, out("gdalwarp_nanprop"), t, [],
                                nodata=False)),
        dict(key="gdalwarp_deflate", tool="gdalwarp",
             settings="same as best, -co COMPRESS=DEFLATE -co PREDICTOR=3",
             out=out("gdalwarp_deflate"),
             argv=gdalwarp_argv(opt_ds, sar, out("gdalwarp_deflate"), t,
                                ["COMPRESS=DEFLATE", "PREDICTOR=3"])),
        dict(key="mmcl_default", tool="mmcl align",
             settings="defaults (-r auto = bilinear here, --threads 0 = "
                      "cores, DEFLATE + PREDICTOR=3)",
             out=out("mmcl_default"),
             argv=[mmcl, "align", opt, sar, out("mmcl_default"),
                   "--overwrite", "-q"]),
        dict(key="otb", tool="otbcli_Superimpose",
             settings="-interpolator linear, float (striped, uncompressed), "
                      "default -ram (OTB_MAX_RAM_HINT unset)",
             out=out("otb"),
             argv=[otb, "-inr", opt, "-inm", sar, "-out", out("otb"),
                   "float", "-interpolator", "linear"] if otb else None),
    ]
    return cfg


def benchmark(args, cfgs):
    env = dict(os.environ)
    env.pop("OTB_MAX_RAM_HINT", None)
    env.pop("GDAL_CACHEMAX", None)
    results = {c["key"]: [] for c in cfgs}
    failed = {}
    rounds = [("warmup", i) for i in range(args.warmup)] + \
             [("run", i) for i in range(args.repeat)]
    for kind, i in rounds:
        for c in cfgs:
            if c["argv"] is None or c["key"] in failed:
                continue
            remove_raster(c["out"])
            os.sync()  # no writeback of earlier outputs during the run
            if kind == "run" and args.wait_idle > 0 and \
                    not wait_idle(args.wait_idle):
                log("  (machine still busy, measuring anyway)")
            errp = c["out"] + ".stderr"
            r = run_measured(c["argv"], env, errp)
            ncpu = os.cpu_count() or 1
            for _ in range(args.retry_busy if kind == "run" else 0):
                if r["rc"] != 0 or r["other"] <= 0.05 * r["wall"] * ncpu:
                    break
                log(f"  {c['key']}: others used {r['other']:.1f} cpu s, "
                    "measuring again")
                remove_raster(c["out"])
                os.sync()
                if args.wait_idle > 0:
                    wait_idle(args.wait_idle)
                r2 = run_measured(c["argv"], env, errp)
                if r2["rc"] != 0 or r2["other"] < r["other"]:
                    r = r2
            if r["rc"] != 0:
                with open(errp, errors="replace") as f:
                    msg = f.read().strip()[-2000:]
                log(f"  {c['key']}: FAILED (exit {r['rc']}): {msg}")
                failed[c["key"]] = f"exit {r['rc']}"
                continue
            log(f"  {kind} {i + 1}: {c['key']:<17} {r['wall']:7.2f} s wall "
                f"{r['cpu']:7.2f} s cpu {r['rss']:6.0f} MB "
                f"(others used {r['other']:.1f} cpu s)")
            if kind == "run":
                results[c["key"]].append(r)
    return results, failed


# ---- checks ----------------------------------------------------------------

def same_grid(opt_ds, path):
    ds = gdal.Open(path)
    gt0, gt1 = opt_ds.GetGeoTransform(), ds.GetGeoTransform()
    s0 = opt_ds.GetSpatialRef()
    s1 = ds.GetSpatialRef()
    size_ok = (ds.RasterXSize, ds.RasterYSize) == \
        (opt_ds.RasterXSize, opt_ds.RasterYSize)
    gt_ok = all(abs(a - b) <= 1e-6 * max(1.0, abs(a)) for a, b in zip(gt0, gt1))
    srs_ok = bool(s1 is not None and s0.IsSame(s1))
    desc = (f"{ds.RasterXSize} x {ds.RasterYSize} x {ds.RasterCount} "
            f"{gdal.GetDataTypeName(ds.GetRasterBand(1).DataType)}, "
            f"block {ds.GetRasterBand(1).GetBlockSize()}, "
            f"compression {ds.GetMetadataItem('COMPRESSION', 'IMAGE_STRUCTURE') or 'none'}")
    return size_ok and gt_ok and srs_ok, desc


def compare(path_a, path_b, invalid_zero_a=False):
    """Max / mean abs difference over pixels valid in both (NaN = invalid;
    with invalid_zero_a, 0 also is invalid in a), and valid fractions."""
    a, b = gdal.Open(path_a), gdal.Open(path_b)
    w, h = a.RasterXSize, a.RasterYSize
    n_bands = min(a.RasterCount, b.RasterCount)
    max_d, sum_d, n_both, n_va, n_vb, n_disagree = 0.0, 0.0, 0, 0, 0, 0
    strip = 512
    for y0 in range(0, h, strip):
        hh = min(strip, h - y0)
        for k in range(1, n_bands + 1):
            va = a.GetRasterBand(k).ReadAsArray(0, y0, w, hh)
            vb = b.GetRasterBand(k).ReadAsArray(0, y0, w, hh)
            ma, mb = ~np.isnan(va), ~np.isnan(vb)
            if invalid_zero_a:
                ma &= va != 0
            both = ma & mb
            d = np.abs(va[both].astype(np.float64) - vb[both])
            if d.size:
                max_d = max(max_d, float(d.max()))
                sum_d += float(d.sum())
            n_both += int(both.sum())
            n_va += int(ma.sum())
            n_vb += int(mb.sum())
            n_disagree += int((ma != mb).sum())
    n = w * h * n_bands
    return dict(max=max_d, mean=sum_d / max(n_both, 1), valid_a=n_va / n,
                valid_b=n_vb / n, valid_both=n_both / n,
                validity_disagree=n_disagree / n)


def fmt_cmp(c):
    return (f"max |diff| {c['max']:.3g} dB, mean |diff| {c['mean']:.3g} dB "
            f"over pixels valid in both ({100 * c['valid_both']:.3f} %); "
            f"valid {100 * c['valid_a']:.3f} % vs {100 * c['valid_b']:.3f} %, "
            f"validity differs on {100 * c['validity_disagree']:.4f} %")


def exact_check(args, mmcl, opt, sar):
    """On a 1024 x 1024 window of the grid near its centre: both tools with
    -et 0 (exact transform for every pixel), which should agree, and each
    with its default -et 0.125 against that exact result. Returns lines."""
    n = min(1024, args.size)
    off = (args.size - n) // 2
    vrt = os.path.join(args.workdir, f"optical_{args.size}_window.vrt")
    gdal.Translate(vrt, opt, format="VRT", srcWin=[off, off, n, n])
    vds = gdal.Open(vrt)
    outs = {}
    for et in (0, None):
        tag = "et0" if et == 0 else "default"
        og = os.path.join(args.workdir, f"exact_gdalwarp_{tag}.tif")
        om = os.path.join(args.workdir, f"exact_mmcl_{tag}.tif")
        for p in (og, om):
            remove_raster(p)
        mm_et = ["-et", "0"] if et == 0 else []
        r1 = subprocess.run(gdalwarp_argv(vds, sar, og, args.threads, [],
                                          et=et),
                            capture_output=True, text=True)
        r2 = subprocess.run([mmcl, "align", vrt, sar, om, "-r", "bilinear",
                             "--threads", str(args.threads),
                             "-co", "COMPRESS=NONE", "-co", "PREDICTOR=1",
                             "--overwrite", "-q"] + mm_et,
                            capture_output=True, text=True)
        if r1.returncode or r2.returncode:
            return [f"-et check failed: {r1.stderr.strip()} "
                    f"{r2.stderr.strip()}"]
        outs[("gdalwarp", tag)], outs[("mmcl", tag)] = og, om
    where = f"{n} x {n} window at ({off}, {off})"
    return [
        f"mmcl vs gdalwarp, both -et 0, {where}: " +
        fmt_cmp(compare(outs[("mmcl", "et0")], outs[("gdalwarp", "et0")])),
        f"mmcl default -et 0.125 (lattice) vs exact, {where}: " +
        fmt_cmp(compare(outs[("mmcl", "default")],
                        outs[("gdalwarp", "et0")])),
        f"gdalwarp default -et 0.125 (approximate transformer) vs exact, "
        f"{where}: " +
        fmt_cmp(compare(outs[("gdalwarp", "default")],
                        outs[("gdalwarp", "et0")])),
    ]


# ---- report ----------------------------------------------------------------

def machine_info(mmcl, otb):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    otb_version = "not installed"
    if otb:
        txt = tool_output([otb, "-help"])
        otb_version = "installed"
        for line in txt.splitlines():
            if "version" in line:
                otb_version = line.split("version", 1)[1].strip()
                break
    return [
        ("date", datetime.datetime.now().astimezone().strftime(
            "%Y-%m-%d %H:%M %Z")),
        ("machine", f"{os.cpu_count()} cores (nproc "
                    f"{tool_output(['nproc']) or '?'}), {cpu}, {mem} RAM, "
                    f"Linux {platform.release()}"),
        ("GDAL", f"{gdal.__version__} "
                 f"({tool_output(['gdalwarp', '--version']) or '?'})"),
        ("mmcl", (tool_output([mmcl, "--version"]) or "?") + ", " + mmcl +
                 ", sources at " + (tool_output(
                     ["git", "-C", ROOT, "describe", "--always", "--dirty"])
                     or "?")),
        ("Orfeo ToolBox", otb_version),
        ("python", platform.python_version() + ", numpy " + np.__version__),
    ]


def parse_ints(text, what):
    try:
        v = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        v = []
    if not v or min(v) < 1:
        sys.exit(f"{what}: a positive number or a comma-separated list of "
                 f"them, not '{text}'")
    return v


def print_table(args, runs, ncpu):
    """One table for every size and thread count measured: medians, CPU
    seconds beside wall, and the ratios to gdalwarp's NaN propagation and
    to its masked (nodata) mode measured in the same rounds."""
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print("| size | threads | tool | settings | median wall s | median cpu s "
          "| wall / gdalwarp NaN | cpu / gdalwarp NaN | wall / gdalwarp "
          "masked | cpu / gdalwarp masked | median peak RSS MB | others % "
          "| wall s of each run |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for size, threads, cfgs, results, failed in runs:
        refs = {}
        for k in ("gdalwarp_nanprop", "gdalwarp_best"):
            if results.get(k):
                refs[k] = (med(results[k], "wall"), med(results[k], "cpu"))
        for c in cfgs:
            rs = results[c["key"]]
            head = f"| {size} | {threads} | {c['tool']} | {c['settings']} |"
            if c["argv"] is None:
                print(head + " not installed |" + " - |" * 8)
                continue
            if not rs:
                print(head + f" failed ({failed.get(c['key'], '?')}) |" +
                      " - |" * 8)
                continue
            t, cp = med(rs, "wall"), med(rs, "cpu")
            ratios = []
            for k in ("gdalwarp_nanprop", "gdalwarp_best"):
                if k in refs:
                    ratios += [f"{t / refs[k][0]:.2f}x",
                               f"{cp / refs[k][1]:.2f}x"]
                else:
                    ratios += ["-", "-"]
            busy_pct = statistics.median(
                100 * r["other"] / max(r["wall"] * ncpu, 1e-9) for r in rs)
            runs_txt = " ".join(f"{r['wall']:.2f}/{r['cpu']:.2f}" for r in rs)
            print(f"{head} {t:.2f} | {cp:.2f} | {' | '.join(ratios)} | "
                  f"{med(rs, 'rss'):.0f} | {busy_pct:.0f} | {runs_txt} |")
    print()


def print_checks(args, opt_ds, cfgs, results, mmcl, opt, sar):
    print(f"Checks at {args.size} x {args.size}, {args.threads} threads:")
    for c in cfgs:
        if c["argv"] is None or not results[c["key"]]:
            continue
        ok, desc = same_grid(opt_ds, c["out"])
        print(f"- {c['key']}: {'on the optical grid' if ok else 'NOT ON THE OPTICAL GRID'}"
              f" ({desc})")
    keys = {c["key"]: c for c in cfgs if results[c["key"]]}
    for a, b, what in (
            ("mmcl_none", "gdalwarp_best",
             "mmcl vs gdalwarp masked (default -et 0.125 both)"),
            ("mmcl_none", "gdalwarp_nanprop",
             "mmcl vs gdalwarp with NaN propagation"),
            ("gdalwarp_nanprop", "gdalwarp_best",
             "gdalwarp NaN propagation vs nodata masks"),
            ("mmcl_none", "mmcl_ref", "mmcl vs the --mmcl-ref build")):
        if a in keys and b in keys:
            print(f"- {what}: " +
                  fmt_cmp(compare(keys[a]["out"], keys[b]["out"])))
    if "gdalwarp_shift_const" in keys and "mmcl_shift_const" in keys:
        # gdalwarp's shifted output put back on the optical grid, as a
        # user would (gdal_edit.py); not timed, it takes no time.
        ds = gdal.Open(keys["gdalwarp_shift_const"]["out"], gdal.GA_Update)
        ds.SetGeoTransform(opt_ds.GetGeoTransform())
        ds = None
        path = keys["gdalwarp_shift_const"]["out"]
        print("- mmcl --sar-shift 1.5,-0.7 vs gdalwarp onto the moved grid: " +
              fmt_cmp(compare(keys["mmcl_shift_const"]["out"], path)))
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    for k in ("mmcl_shift_field", "mmcl_shift_const"):
        if k in keys and "mmcl_none" in keys:
            a, b = results[k], results["mmcl_none"]
            print(f"- {k} / mmcl without a shift: wall "
                  f"{med(a, 'wall') / med(b, 'wall'):.3f}x, cpu "
                  f"{med(a, 'cpu') / med(b, 'cpu'):.3f}x (medians)")
    if "mmcl_none" in keys and "mmcl_default" in keys:
        c = compare(keys["mmcl_default"]["out"], keys["mmcl_none"]["out"])
        print(f"- mmcl DEFLATE vs uncompressed: max |diff| {c['max']:.3g}")
    if "otb" in keys and "gdalwarp_best" in keys:
        print("- OTB vs gdalwarp (OTB's fill value 0 counted invalid): " +
              fmt_cmp(compare(keys["otb"]["out"],
                              keys["gdalwarp_best"]["out"],
                              invalid_zero_a=True)))
    if not args.no_exact_check:
        for line in exact_check(args, mmcl, opt, sar):
            print("- " + line)
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mmcl", help="mmcl program (default: ./build/mmcl "
                    "from the project root, else mmcl on PATH)")
    ap.add_argument("--mmcl-ref", metavar="PATH",
                    help="another mmcl program (e.g. a build of an earlier "
                    "commit) run beside --mmcl with the same settings; its "
                    "output is compared with --mmcl's")
    ap.add_argument("--workdir", default="/tmp/mmcl-bench-align",
                    help="data and outputs (data reused when present)")
    ap.add_argument("--size", default="8192",
                    help="optical grid edge in pixels (10 m), or a comma-"
                    "separated list (e.g. 4096,8192): one table for all")
    ap.add_argument("--repeat", type=int, default=5,
                    help="measured runs of each tool")
    ap.add_argument("--warmup", type=int, default=0,
                    help="unmeasured runs of each tool first (the inputs "
                    "are read into the page cache in any case)")
    ap.add_argument("--threads", default="2",
                    help="threads for gdalwarp and mmcl (matching rows), or "
                    "a comma-separated list (e.g. 1,2)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S",
                    help="before each measured run, wait up to S seconds "
                    "for the machine to be idle (< 10 %% busy)")
    ap.add_argument("--retry-busy", type=int, default=0, metavar="N",
                    help="measure a run again (up to N times, keeping the "
                    "quietest) when other processes used more than 5 %% of "
                    "the machine during it")
    ap.add_argument("--shift", action="store_true",
                    help="also mmcl align with a shift field and a constant "
                    "shift (the misregistration corrected in the warp)")
    ap.add_argument("--rows", metavar="KEYS",
                    help="run only these rows, comma separated (e.g. "
                    "gdalwarp_best,mmcl_none,gdalwarp_nanprop; with --shift "
                    "also mmcl_shift_field,mmcl_shift_const,"
                    "gdalwarp_shift_const; with --mmcl-ref mmcl_ref)")
    ap.add_argument("--no-otb", action="store_true",
                    help="skip Orfeo ToolBox")
    ap.add_argument("--no-exact-check", action="store_true",
                    help="skip the -et 0 comparison")
    ap.add_argument("--no-checks", action="store_true",
                    help="skip every output check (timings only)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the outputs (about 0.5 GB each at 8192)")
    args = ap.parse_args()
    args.workdir = os.path.abspath(args.workdir)
    sizes = parse_ints(args.size, "--size")
    thread_counts = parse_ints(args.threads, "--threads")

    mmcl = find_mmcl(args.mmcl)
    if not mmcl or not os.access(mmcl, os.X_OK):
        sys.exit("mmcl not found: build it (cmake --build build) or pass "
                 "--mmcl PATH")
    if args.mmcl_ref:
        args.mmcl_ref = os.path.abspath(args.mmcl_ref)
        if not os.access(args.mmcl_ref, os.X_OK):
            sys.exit(f"--mmcl-ref: '{args.mmcl_ref}' is not a program")
    if not shutil.which("gdalwarp"):
        sys.exit("gdalwarp not found (apt-get install gdal-bin)")
    otb = None if args.no_otb else shutil.which("otbcli_Superimpose")

    info = machine_info(mmcl, otb)
    if args.mmcl_ref:
        info.append(("mmcl (--mmcl-ref)",
                     (tool_output([args.mmcl_ref, "--version"]) or "?") +
                     ", " + args.mmcl_ref))
    ncpu = os.cpu_count() or 1
    runs, checks, sar_desc = [], [], []
    any_failed = False
    for size in sizes:
        args.size = size
        opt, sar = ensure_data(args.workdir, size)
        opt_ds = gdal.Open(opt)
        sar_ds = gdal.Open(sar)
        sar_desc.append(f"{size} x {size}: SAR {sar_ds.RasterXSize} x "
                        f"{sar_ds.RasterYSize} x {sar_ds.RasterCount}")
        for p in (opt, sar):  # into the page cache
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass
        for threads in thread_counts:
            args.threads = threads
            cfgs = configs(args, mmcl, opt, sar, opt_ds, otb)
            if args.rows:
                keep = set(args.rows.split(","))
                unknown = keep - {c["key"] for c in cfgs}
                if unknown:
                    sys.exit("unknown rows: " + ", ".join(sorted(unknown)))
                cfgs = [c for c in cfgs if c["key"] in keep]
            log(f"{size} x {size}, {threads} threads: {args.warmup} warm-up "
                f"+ {args.repeat} measured runs of each (rounds interleaved)")
            results, failed = benchmark(args, cfgs)
            any_failed |= bool(failed)
            runs.append((size, threads, cfgs, results, failed))
            # The checks once per size, at its last thread count.
            if not args.no_checks and threads == thread_counts[-1]:
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    print_checks(args, opt_ds, cfgs, results, mmcl, opt, sar)
                checks.append(buf.getvalue())
            for c in cfgs:
                if os.path.exists(c["out"] + ".stderr"):
                    os.remove(c["out"] + ".stderr")
                if not args.keep:
                    remove_raster(c["out"])
        if not args.keep:
            for t in ("gdalwarp", "mmcl"):
                for e in ("et0", "default"):
                    remove_raster(os.path.join(args.workdir,
                                               f"exact_{t}_{e}.tif"))

    busy = sum(r["other"] for run in runs for rs in run[3].values()
               for r in rs)
    total = sum(r["wall"] for run in runs for rs in run[3].values()
                for r in rs)
    print(f"## mmcl align benchmark: optical grids at 10 m "
          f"(EPSG:{OPT_EPSG}), 2-band float32 SAR at ~20 m "
          f"(EPSG:{SAR_EPSG}) with a NaN hole ({'; '.join(sar_desc)})\n")
    for k, v in info:
        print(f"- {k}: {v}")
    print(f"- runs: median of {args.repeat} after {args.warmup} warm-up, "
          "rounds interleaved, sync before each; wall = perf_counter around "
          "the process; cpu = user + sys and peak RSS = ru_maxrss, both from "
          "os.wait4 (children included); page cache warm")
    print(f"- other processes used {100 * busy / max(total * ncpu, 1e-9):.0f} "
          f"% of the machine's CPU during the measured runs "
          f"({'quiet' if busy < 0.05 * total * ncpu else 'NOT QUIET: wall times are inflated, compare cpu s'}); "
          "others % = median share of the machine other processes used "
          "during the runs of a row; each run: wall/cpu s\n")
    print_table(args, runs, ncpu)
    for text in checks:
        print(text, end="")
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
