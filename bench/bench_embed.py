#!/usr/bin/env python3
"""Embedding-map benchmark: `mmcl embed --modality joint` against a
PyTorch + GDAL sliding-window script doing the same work.

Scene: `mmcl synth --size N --optical-bands 13 --sar-bands 2 --shared 2
--seed 1`. Model: CLIP, MLP 256-256-64 on 3 x 3 patches, both towers.
`mmcl train` refuses --dim 64 when the SAR patch has 18 values (k must not
exceed the smaller patch dimension), so the model is trained with --dim 18
and its last layers are widened to 64 outputs here (the 18 trained rows
kept, 46 random rows added; decoders zero-padded). Only the architecture
matters for throughput; both tools read the same file.

Usage (Debian python: numpy, osgeo.gdal, torch from python3-torch):

    /usr/bin/python3 bench/bench_embed.py --build build-embed --work /tmp/be \
        --sizes 1024,2048,4096 --threads 1,2 --repeat 3,3,1

With --precisions f32,bf16 (the default) mmcl runs once per precision
(bf16 where the CPU runs it), and the roofline line is the same run's
oneDNN peak (bench/matmul_bench, built with -DMMCL_BUILD_BENCH=ON: one
4096 x 1024 x 1024 product split over the threads, each on one thread as
mmcl's workers run) in f32 and bf16; each mmcl row's encoders are quoted
as a share of the peak of their precision.

Modes:
    (default)          set up, run both tools, sgemm peak, print the table
    --worker torch     the PyTorch + GDAL script alone:
                       --worker torch --threads N MODEL OPTICAL SAR OUT
    --sgemm            only the sgemm peak (torch.mm and numpy, 1024^3)
"""
import argparse
import json
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable


# --------------------------------------------------------------- model file
def read_model(path):
    import numpy as np
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    md = h.pop("__metadata__")
    meta = json.loads(md["mmcl"])
    data = b[8 + n:]
    ts = {}
    for name, v in h.items():
        s, e = v["data_offsets"]
        ts[name] = np.frombuffer(data[s:e], dtype="<f4").reshape(v["shape"]).copy()
    return md, meta, ts


def write_model(path, md, meta, ts):
    import numpy as np
    hdr = {"__metadata__": {**md, "mmcl": json.dumps(meta)}}
    off, blobs = 0, []
    for name in sorted(ts):
        bb = np.ascontiguousarray(ts[name], "<f4").tobytes()
        hdr[name] = {"dtype": "F32", "shape": list(ts[name].shape),
                     "data_offsets": [off, off + len(bb)]}
        off += len(bb)
        blobs.append(bb)
    hj = json.dumps(hdr).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))


def widen_model(src, dst, k):
    """Widen a trained model's embedding from meta['k'] to k outputs."""
    import numpy as np
    md, meta, ts = read_model(src)
    k0 = meta["k"]
    P = meta["patch"]
    rng = np.random.default_rng(0)
    for name, a in list(ts.items()):
        m = name.split(".")[1]
        d = meta[m]["bands"] * P * P if m in ("optical", "sar") else k
        enc_out = name.startswith("encoder.") and ".2." in name
        uni = name.startswith("unimodal.")
        # the unimodal baseline (PCA) has min(k, d) dimensions
        kk = min(k, d) if uni or ".unimodal." in name else k
        if (enc_out or uni) and name.endswith("weight"):
            extra = rng.normal(0, 1 / np.sqrt(a.shape[1]),
                               (kk - a.shape[0], a.shape[1])).astype("f4")
            ts[name] = np.vstack([a, extra])
        elif (enc_out or uni) and name.endswith("bias"):
            ts[name] = np.concatenate([a, np.zeros(kk - a.shape[0], "f4")])
        elif (name.startswith("decoder.") and name.endswith("weight")
              and "nonredundant" not in name and a.shape[1] == k0):
            ts[name] = np.hstack([a, np.zeros((a.shape[0], kk - k0), "f4")])
    meta["k"] = k
    for m in ("optical", "sar"):
        meta[m]["layers"][-1] = k
    meta["training"]["DIM"] = str(k)
    write_model(dst, md, meta, ts)


# ------------------------------------------------------ PyTorch + GDAL worker
def torch_worker(model, optical, sar, out, threads, tile=256):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from osgeo import gdal
    gdal.UseExceptions()
    torch.set_num_threads(threads)
    _, meta, ts = read_model(model)
    P = meta["patch"]
    r = P // 2
    towers = []
    for m in ("optical", "sar"):
        n_layers = len(meta[m]["layers"]) - 1
        Ws = [torch.from_numpy(ts[f"encoder.{m}.{i}.weight"]).t().contiguous()
              for i in range(n_layers)]
        bs = [torch.from_numpy(ts[f"encoder.{m}.{i}.bias"]) for i in range(n_layers)]
        mean = np.array(meta[m]["mean"], "f4")[:, None, None]
        std = np.array(meta[m]["std"], "f4")[:, None, None]
        towers.append((Ws, bs, mean, std))
    ds = [gdal.Open(optical), gdal.Open(sar)]
    W, H = ds[0].RasterXSize, ds[0].RasterYSize
    if (ds[1].RasterXSize, ds[1].RasterYSize) != (W, H) or \
            ds[1].GetGeoTransform() != ds[0].GetGeoTransform():
        raise SystemExit("torch worker: the SAR must be on the optical grid")
    k = meta["k"]
    # the creation options mmcl embed uses by default (src/core/writer.c), and
    # GDAL's compression threads: this loop writes on the thread that
    # computes, so they let the compression overlap the next windows
    # (mmcl compresses on its own commit thread instead)
    co = ["TILED=YES", f"BLOCKXSIZE={tile}", f"BLOCKYSIZE={tile}",
          "COMPRESS=ZSTD", "ZSTD_LEVEL=1", "PREDICTOR=3", "INTERLEAVE=BAND",
          "BIGTIFF=IF_SAFER"]
    if threads > 1:
        co.append(f"NUM_THREADS={threads}")
    o = gdal.GetDriverByName("GTiff").Create(out, W, H, k, gdal.GDT_Float32, co)
    o.SetGeoTransform(ds[0].GetGeoTransform())
    o.SetProjection(ds[0].GetProjection())
    for b in range(k):
        o.GetRasterBand(b + 1).SetNoDataValue(float("nan"))
    with torch.no_grad():
        for y0 in range(0, H, tile):
            for x0 in range(0, W, tile):
                w, h = min(tile, W - x0), min(tile, H - y0)
                # window with halo, clipped to the raster, reflect-padded
                xa, ya = max(x0 - r, 0), max(y0 - r, 0)
                xb, yb = min(x0 + w + r, W), min(y0 + h + r, H)
                pad = ((0, 0), (r - (y0 - ya), r - (yb - (y0 + h))),
                       (r - (x0 - xa), r - (xb - (x0 + w))))
                hs = []
                for (Ws, bs, mean, std), d in zip(towers, ds):
                    a = d.ReadAsArray(xa, ya, xb - xa, yb - ya).astype("f4", copy=False)
                    a = (a - mean) / std
                    if any(p for pp in pad for p in pp):
                        a = np.pad(a, pad, mode="reflect")
                    x = F.unfold(torch.from_numpy(np.ascontiguousarray(a))[None],
                                 P)[0].t()           # (h*w, bands*P*P)
                    for i, (Wi, bi) in enumerate(zip(Ws, bs)):
                        x = torch.addmm(bi, x, Wi)
                        if i < len(Ws) - 1:
                            x = torch.relu_(x)
                    hs.append(x)
                h1, h2 = hs
                v1 = ~torch.isnan(h1).any(1, keepdim=True)
                v2 = ~torch.isnan(h2).any(1, keepdim=True)
                j = torch.where(v1 & v2, (h1 + h2) * 0.5,
                                torch.where(v1, h1, h2))
                buf = j.t().contiguous().numpy().reshape(k, h, w)
                o.WriteRaster(x0, y0, w, h, buf.tobytes(), w, h,
                              gdal.GDT_Float32, list(range(1, k + 1)))
    o = None


# ------------------------------------------------------------------ sgemm
def sgemm_peak(n=1024, reps=10):
    import numpy as np
    import torch
    res = {}
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    from threadpoolctl import threadpool_limits
    for t in (1, 2):
        # Debian's torch runs mm on the system OpenBLAS, whose pool
        # torch.set_num_threads does not reach: limit it as well.
        torch.set_num_threads(t)
        with threadpool_limits(limits=t, user_api="blas"):
            torch.mm(a, b)
            best = 1e9
            for _ in range(reps):
                t0 = time.perf_counter()
                torch.mm(a, b)
                best = min(best, time.perf_counter() - t0)
        res[f"torch.mm t{t}"] = 2 * n ** 3 / best / 1e9
    an, bn = a.numpy(), b.numpy()
    an @ bn
    best = 1e9
    for _ in range(reps):
        t0 = time.perf_counter()
        an @ bn
        best = min(best, time.perf_counter() - t0)
    res["numpy @ (default threads)"] = 2 * n ** 3 / best / 1e9
    try:
        from threadpoolctl import threadpool_info
        res["blas"] = [(i.get("internal_api"), i.get("version"),
                        i.get("architecture"), i.get("num_threads"),
                        os.path.basename(i.get("filepath", "")))
                       for i in threadpool_info()]
    except ImportError:
        res["blas"] = "threadpoolctl not installed"
    res["torch config"] = [l.strip() for l in torch.__config__.show().splitlines()
                           if "BLAS" in l or "CPU capability" in l]
    return res


def blas_info():
    """The BLAS libraries this Python process loads for numpy and torch:
    (api, version, kernel, threads) as threadpoolctl reports them."""
    import numpy  # noqa: F401  (loads OpenBLAS)
    import torch  # noqa: F401
    from threadpoolctl import threadpool_info
    return [(i.get("internal_api"), i.get("version"), i.get("architecture"),
             i.get("num_threads")) for i in threadpool_info()
            if i.get("user_api") == "blas"]


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_id():
    """'family F model M' and the flags that matter for the products."""
    fam = mod = "?"
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            k = k.strip()
            if k == "cpu family":
                fam = v.strip()
            elif k == "model":
                mod = v.strip()
            elif k == "flags":
                flags = set(v.split())
    have = [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
            if x in flags]
    return f"family {fam} model {mod} ({', '.join(have)})"


def mmcl_engine(mmcl):
    out = subprocess.run([mmcl, "--version"], capture_output=True,
                         text=True, check=True).stdout
    return next((l.strip() for l in out.splitlines()
                 if l.startswith("Encoders:")), "Encoders: ?")


def roofline(build, coretype, threads):
    """The same run's oneDNN peak: {(precision, threads): GFLOP/s} and the
    driver's JSON lines."""
    exe = os.path.join(build, "bench", "matmul_bench")
    if not os.path.exists(exe):
        print(f"no {exe}: configure with -DMMCL_BUILD_BENCH=ON for the "
              "roofline")
        return {}, []
    env = dict(os.environ)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    out = subprocess.run([exe, "--threads", ",".join(map(str, threads))],
                         capture_output=True, text=True, check=True,
                         env=env).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    # Per CPU second of a thread, as mmcl's timing line counts the
    # encoders (a shared machine's waits are not counted in either).
    peaks = {(l["precision"], l["threads"]): l["gflops_cpu"] for l in lines
             if l["kind"] == "peak"}
    return peaks, lines


def mmcl_blas(mmcl):
    """mmcl's BLAS line and the kernel it runs, from `mmcl --version` in
    the environment the benchmark runs it in."""
    out = subprocess.run([mmcl, "--version"], capture_output=True,
                         text=True, check=True).stdout
    line = next((l.strip() for l in out.splitlines() if "BLAS" in l),
                out.strip())
    m = re.search(r"kernel (\w+)", line)
    return line, m.group(1) if m else None


def run_sgemm_peak(coretype=None):
    """sgemm_peak() in a fresh process, with OPENBLAS_CORETYPE forced when
    given (OpenBLAS reads it when it loads)."""
    env = dict(os.environ)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    out = subprocess.run([PY, os.path.abspath(__file__), "--sgemm"],
                         capture_output=True, text=True, check=True,
                         env=env).stdout
    return json.loads(out)


# ------------------------------------------------------------------ driver
ENC_RE = re.compile(r"MMCL: embed timing.*?read ([\d.]+), patches ([\d.]+), "
                    r"encoders ([\d.]+) \(([\d.]+) GFLOP, ([\d.]+) GFLOP/s\), "
                    r"compose ([\d.]+), write ([\d.]+)")


def bench_scene(mmcl, work, n):
    """The benchmarks' scene of n x n pixels in work/s<n> (made once):
    `mmcl synth --optical-bands 13 --sar-bands 2 --shared 2 --seed 1`."""
    d = os.path.join(work, f"s{n}")
    if not os.path.exists(os.path.join(d, "sar.tif")):
        subprocess.run([mmcl, "synth", d, "--size", str(n), "--optical-bands",
                        "13", "--sar-bands", "2", "--shared", "2", "--seed",
                        "1", "-q", "--overwrite"], check=True)
    return d


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v: (wall s, peak RSS MB, CPU s,
    load average before, mmcl's timing line or None)."""
    load = os.getloadavg()[0]
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True,
                       text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", p.stderr).group(1)
    parts = [float(x) for x in wall.split(":")]
    secs = sum(v * 60 ** i for i, v in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                        p.stderr).group(1)) / 1024
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)",
                              p.stderr).group(1)) for k in ("User", "System"))
    m = ENC_RE.search(p.stderr)
    timing = tuple(float(v) for v in m.groups()) if m else None
    return secs, rss, cpu, load, timing


FLOP_PER_PX = 2 * (117 * 256 + 256 * 256 + 256 * 64) + \
    2 * (18 * 256 + 256 * 256 + 256 * 64)


def max_abs_diff(a_path, b_path):
    import numpy as np
    from osgeo import gdal
    a, b = gdal.Open(a_path), gdal.Open(b_path)
    worst, nan_mismatch = 0.0, 0
    for y in range(0, a.RasterYSize, 256):
        h = min(256, a.RasterYSize - y)
        x = a.ReadAsArray(0, y, a.RasterXSize, h)
        z = b.ReadAsArray(0, y, a.RasterXSize, h)
        va, vb = ~np.isnan(x), ~np.isnan(z)
        nan_mismatch += int((va != vb).sum())
        both = va & vb
        if both.any():
            worst = max(worst, float(np.abs(x[both] - z[both]).max()))
    return worst, nan_mismatch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["torch"])
    ap.add_argument("--sgemm", action="store_true")
    ap.add_argument("--blas-info", action="store_true",
                    help="print the BLAS that numpy/torch load here (JSON)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", default="/tmp/mmcl-bench-embed")
    ap.add_argument("--sizes", default="1024,2048,4096")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", default="3",
                    help="runs per size: one number, or one per size "
                         "(e.g. 3,3,1)")
    ap.add_argument("--precisions", default="f32,bf16",
                    help="mmcl's --precision values to run (bf16 only "
                         "where the CPU runs it)")
    ap.add_argument("--torch-max-size", type=int, default=4096,
                    help="skip the PyTorch script above this size")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    if a.worker:
        model, opt, sar, out = a.args
        # torch.set_num_threads() does not reach the OpenBLAS that Debian's
        # torch calls for addmm: without this, "1 thread" runs its GEMMs
        # on every core. Set before numpy and torch load OpenBLAS.
        for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ[v] = str(a.threads)
        torch_worker(model, opt, sar, out, int(a.threads))
        return
    if a.sgemm:
        print(json.dumps(sgemm_peak(), indent=1))
        return
    if a.blas_info:
        print(json.dumps(blas_info()))
        return

    mmcl = os.path.join(a.build, "mmcl")
    os.makedirs(a.work, exist_ok=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    for n in sizes:
        bench_scene(mmcl, a.work, n)
    model = os.path.join(a.work, "m.mmcl")
    if not os.path.exists(model):
        d = os.path.join(a.work, f"s{sizes[0]}")
        m18 = os.path.join(a.work, "m18.mmcl")
        subprocess.run([mmcl, "train", f"{d}/optical.tif", f"{d}/sar.tif", m18,
                        "--objective", "clip", "--encoder", "mlp:256,256",
                        "--dim", "18", "--patch", "3", "--samples", "20000",
                        "--epochs", "1", "--batch", "1024", "-q", "--overwrite"],
                       check=True)
        widen_model(m18, model, 64)

    precisions = a.precisions.split(",")
    if "|bf16" not in mmcl_engine(mmcl):
        precisions = [p for p in precisions if p != "bf16"]
    reps = [int(r) for r in a.repeat.split(",")]
    reps += [reps[-1]] * (len(sizes) - len(reps))
    rows = []
    for n, rep in zip(sizes, reps):
        d = os.path.join(a.work, f"s{n}")
        for t in threads:
            res = {}
            tools = ["mmcl " + p for p in precisions] + ["pytorch"]
            for tool in tools:
                if tool == "pytorch" and n > a.torch_max_size:
                    continue
                out = os.path.join(a.work,
                                   f"out_{tool.replace(' ', '_')}_{n}.tif")
                if tool.startswith("mmcl"):
                    # CPL_DEBUG MMCL: the CPU seconds of each step, and the
                    # rate of the encoders (the compute part)
                    cmd = [mmcl, "embed", model, f"{d}/optical.tif",
                           f"{d}/sar.tif", out, "--modality", "joint",
                           "--threads", str(t), "-q", "--overwrite",
                           "--precision", tool.split()[1],
                           "--config", "CPL_DEBUG", "MMCL"]
                else:
                    cmd = [PY, os.path.abspath(__file__), "--worker", "torch",
                           "--threads", str(t), model, f"{d}/optical.tif",
                           f"{d}/sar.tif", out]
                runs = []
                for _ in range(rep):
                    if os.path.exists(out):
                        os.remove(out)
                    subprocess.run(["sync"])
                    runs.append(timed(cmd))
                    r = runs[-1]
                    print(f"  {tool} t{t} {n}: {r[0]:.2f} s, CPU {r[2]:.2f} s, "
                          f"{r[1]:.0f} MB, load {r[3]:.1f}"
                          + (f", encoders {r[4][4]:.1f} GFLOP/s" if r[4] else ""),
                          flush=True)
                wall = statistics.median(r[0] for r in runs)
                rss = max(r[1] for r in runs)
                cpu = statistics.median(r[2] for r in runs)
                load = statistics.median(r[3] for r in runs)
                enc = (statistics.median(r[4][4] for r in runs)
                       if runs[0][4] else None)
                share = (statistics.median((r[4][2] / r[2]) for r in runs)
                         if runs[0][4] else None)
                res[tool] = (wall, rss, cpu, load, enc, share, len(runs))
            if "pytorch" in res:
                for p in precisions:
                    diff = max_abs_diff(
                        os.path.join(a.work, f"out_mmcl_{p}_{n}.tif"),
                        os.path.join(a.work, f"out_pytorch_{n}.tif"))
                    print(f"  mmcl {p} vs PyTorch: max abs diff "
                          f"{diff[0]:.2e}, NaN mismatches {diff[1]}")
            for tool, (wall, rss, cpu, load, enc, share, k) in res.items():
                wr = res["pytorch"][0] / wall if "pytorch" in res else None
                cr = res["pytorch"][2] / cpu if "pytorch" in res else None
                rows.append((tool, t, n, k, wall, cpu, n * n / wall / 1e6,
                             n * n / cpu / 1e6, rss, wr, cr,
                             FLOP_PER_PX * n * n / cpu / 1e9, enc, share, load))
    # The sgemm peak of the kernel mmcl runs (the encoders' roof), and of
    # the kernel PyTorch gets in its default environment.
    mline, mkernel = mmcl_blas(mmcl)
    peaks, rlines = roofline(a.build, mkernel, threads)
    for l in rlines:
        print("  matmul_bench:", json.dumps(l))
    tblas = json.loads(subprocess.run(
        [PY, os.path.abspath(__file__), "--blas-info"], capture_output=True,
        text=True, check=True).stdout)
    peak = run_sgemm_peak(mkernel)
    print("sgemm peak with mmcl's kernel:", json.dumps(peak, indent=1))
    tpeak = run_sgemm_peak()
    p1 = peak["torch.mm t1"]
    print(f"CPU: {cpu_model()}, {cpu_id()}, {os.cpu_count()} cores, "
          f"load average now {os.getloadavg()}")
    print(f"mmcl: {mmcl_engine(mmcl)}")
    if peaks:
        print("roofline (oneDNN, 4096 x 1024 x 1024, this run, GFLOP per "
              "CPU second of a thread): " +
              ", ".join(f"{p} {peaks[(p, t)]:.1f} on {t} thread"
                        f"{'s' if t > 1 else ''}" for p in ("f32", "bf16")
                        for t in threads if (p, t) in peaks))
    print(f"mmcl: {mline}; 1-thread sgemm peak of that kernel "
          f"{p1:.1f} GFLOP/s (2 threads {peak['torch.mm t2']:.1f})")
    print(f"PyTorch script (default environment): BLAS {tblas}; 1-thread "
          f"sgemm peak {tpeak['torch.mm t1']:.1f} GFLOP/s (2 threads "
          f"{tpeak['torch.mm t2']:.1f})")
    # The machine may be shared: CPU seconds are the steadier figure.
    # Encoders: GFLOP of the MLPs per CPU second of the worker threads
    # inside them (GEMM blocks, bias, ReLU, L2 norm), from mmcl's timing.
    print("| tool | threads | size | runs | wall s | CPU s | Mpx/s (wall) | "
          "Mpx per CPU-s | peak RSS MB | wall vs PyTorch | CPU vs PyTorch | "
          "GFLOP per CPU-s (whole run) | encoders GFLOP/s per thread-CPU-s "
          "(% of the same precision's 1-thread oneDNN peak; of the "
          "1-thread sgemm peak without it) | encoders' share of CPU | "
          "load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (tool, t, n, k, wall, cpu, mpx, mpc, rss, wr, cr, gf, enc, share,
         load) in rows:
        f = lambda v: f"{v:.2f}x" if v else "-"
        roof = peaks.get((tool.split()[-1], 1), p1)
        e = f"{enc:.1f} ({100 * enc / roof:.0f} %)" if enc else "-"
        sh = f"{100 * share:.0f} %" if share else "-"
        print(f"| {tool} | {t} | {n}^2 | {k} | {wall:.2f} | {cpu:.2f} | "
              f"{mpx:.3f} | {mpc:.3f} | {rss:.0f} | {f(wr)} | {f(cr)} | "
              f"{gf:.1f} | {e} | {sh} | {load:.1f} |")


if __name__ == "__main__":
    main()
