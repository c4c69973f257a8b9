#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark of the closed-form `cca` objective: mmcl against a NumPy
reference and scikit-learn's CCA.

Data: N pairs (default 200 000) of d1 = 117 optical and d2 = 18 SAR values
(3x3 patches of 13 and 2 bands) from the linear-Gaussian model of the
design (x1 = A1c zc + A1s z1 + e1, x2 = A2c zc + A2s z2 + e2) with 8 shared
factors of decreasing strength, so the 8 canonical correlations are
distinct; columns standardised; written once as raw float32 files in
--workdir, which every side reads (identical samples).

Three fits of the top k = 8 canonical correlations, each timed from the
float32 samples in memory to the correlations:
  mmcl     bench/cca_bench: moments over row chunks as train computes
           them (one float SYRK per chunk of shifted rows, summed in
           double, chunks on the threads in chunk order), covariances,
           Cholesky whitening + SVD (mmcl__cca), ridge eps added to S11
           and S22.
  NumPy    the closed form in float64: centre, one covariance GEMM of
           [X1 X2], Cholesky of S11 + eps I and S22 + eps I, triangular
           solves (SciPy), SVD of the whitened cross-covariance.
  sklearn  sklearn.cross_decomposition.CCA (iterative NIPALS with
           deflation, no ridge) with --sk-max-iter / --sk-tol; its
           correlations are those of its transformed outputs (x_scores,
           y_scores column by column).
mmcl and NumPy solve the same ridge problem, so their correlations must
agree to 1e-4; sklearn is compared with the NumPy closed form at eps = 0
(the problem it solves).

Each measurement runs in a fresh process with OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS set to the thread count. Times are medians over
--runs (sklearn: --sk-runs) fits after one warm-up fit (not for sklearn).

Run with Debian's python3 (python3-numpy, python3-scipy, python3-sklearn)
after building with -DMMCL_BUILD_BENCH=ON:
    /usr/bin/python3 bench/bench_cca.py [--build build] [--quick]
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
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
D1, D2 = 117, 18


def make_data(workdir, n, seed=3):
    """x1 (n, D1), x2 (n, D2) float32 raw files, written once."""
    os.makedirs(workdir, exist_ok=True)
    p1 = os.path.join(workdir, f"cca_x1_{n}.f32")
    p2 = os.path.join(workdir, f"cca_x2_{n}.f32")
    if os.path.exists(p1) and os.path.exists(p2):
        return p1, p2
    rng = np.random.default_rng(seed)
    kc, k1, k2 = 8, 24, 4
    strength = np.linspace(1.6, 0.15, kc)  # shared factor j's weight in x2
    zc = rng.standard_normal((n, kc))
    z1 = rng.standard_normal((n, k1))
    z2 = rng.standard_normal((n, k2))
    a1c = rng.standard_normal((D1, kc)) / np.sqrt(kc)
    a1s = rng.standard_normal((D1, k1)) / np.sqrt(k1)
    a2c = rng.standard_normal((D2, kc)) / np.sqrt(kc) * strength
    a2s = rng.standard_normal((D2, k2)) / np.sqrt(k2)
    x1 = zc @ a1c.T + z1 @ a1s.T + 0.5 * rng.standard_normal((n, D1))
    x2 = zc @ a2c.T + z2 @ a2s.T + 0.7 * rng.standard_normal((n, D2))
    for x, p in ((x1, p1), (x2, p2)):
        x = (x - x.mean(0)) / x.std(0)
        x.astype(np.float32).tofile(p)
    return p1, p2


# ---- Workers (each in its own process) ------------------------------------

def numpy_cca(x1, x2, k, eps):
    """Top-k canonical correlations, closed form in float64."""
    from scipy.linalg import solve_triangular
    x = np.hstack([x1, x2]).astype(np.float64)
    x -= x.mean(axis=0)
    c = (x.T @ x) / x.shape[0]
    d1 = x1.shape[1]
    c11 = c[:d1, :d1] + eps * np.eye(d1)
    c22 = c[d1:, d1:] + eps * np.eye(c.shape[0] - d1)
    c12 = c[:d1, d1:]
    l1 = np.linalg.cholesky(c11)
    l2 = np.linalg.cholesky(c22)
    m = solve_triangular(l1, c12, lower=True)           # L1^-1 S12
    m = solve_triangular(l2, m.T, lower=True).T         # ... L2^-T
    return np.linalg.svd(m, compute_uv=False)[:k]


def worker_numpy(args, x1, x2):
    times, rho = [], None
    for r in range(args.runs + 1):
        t0 = time.perf_counter()
        rho = numpy_cca(x1, x2, args.k, args.eps)
        dt = time.perf_counter() - t0
        if r > 0:
            times.append(dt)
    rho0 = numpy_cca(x1, x2, args.k, 0.0)
    return {"kind": "numpy", "times": times, "rho": rho.tolist(),
            "rho_eps0": rho0.tolist()}


def worker_sklearn(args, x1, x2):
    import sklearn
    from sklearn.cross_decomposition import CCA
    from sklearn.exceptions import ConvergenceWarning
    times, rho, n_iter, warned = [], None, None, False
    for _ in range(args.sk_runs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            t0 = time.perf_counter()
            model = CCA(n_components=args.k, max_iter=args.sk_max_iter,
                        tol=args.sk_tol)
            xs, ys = model.fit(x1, x2).transform(x1, x2)
            times.append(time.perf_counter() - t0)
        warned = warned or any(issubclass(w.category, ConvergenceWarning)
                               for w in caught)
        rho = [float(np.corrcoef(xs[:, j], ys[:, j])[0, 1])
               for j in range(args.k)]
        n_iter = [int(i) for i in getattr(model, "n_iter_", [])]
    return {"kind": "sklearn", "times": times, "rho": rho, "n_iter": n_iter,
            "converged": not warned, "sklearn": sklearn.__version__}


def pools():
    try:
        from threadpoolctl import threadpool_info
        return [{k: i.get(k) for k in ("internal_api", "version",
                                        "architecture", "num_threads")}
                for i in threadpool_info()]
    except ImportError:
        return None


def worker(args):
    x1 = np.fromfile(args.x1, dtype=np.float32).reshape(args.n, D1)
    x2 = np.fromfile(args.x2, dtype=np.float32).reshape(args.n, D2)
    out = (worker_numpy if args.worker == "numpy" else worker_sklearn)(
        args, x1, x2)
    out["pools"] = pools()
    print(json.dumps(out))


# ---- Orchestration --------------------------------------------------------

def thread_env(threads, unset_coretype):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    if unset_coretype:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    return env


def cpu_busy_seconds():
    """Busy CPU time of the whole machine so far (all cores), and steal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, v[7] / hz


def run(cmd, env, max_tries=4, limit=0.15):
    """Runs cmd (again, up to max_tries times, while other processes used
    more than @limit cores meanwhile: the machine is shared); returns its
    JSON lines and that load."""
    for _ in range(max_tries):
        busy0, steal0 = cpu_busy_seconds()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy1, steal1 = cpu_busy_seconds()
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
        own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        others = (max(0.0, busy1 - busy0 - own) + steal1 - steal0) / wall
        if others < limit:
            break
        print(f"  (busy machine: others used {others:.2f} cores; retry)",
              file=sys.stderr)
        time.sleep(5)
    lines = [json.loads(l) for l in p.stdout.splitlines()
             if l.startswith("{")]
    return lines, others


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu,
            "python": platform.python_version(), "numpy": np.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--workdir", default="/tmp/mmcl_bench")
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--eps", type=float, default=1e-3,
                    help="ridge (mmcl's RIDGE default)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--sk-runs", type=int, default=1)
    ap.add_argument("--sk-max-iter", type=int, default=5000)
    ap.add_argument("--sk-tol", type=float, default=1e-10)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--chunk", type=int,
                    help="rows per moments batch for mmcl (default: "
                         "cca_bench's, train's batch)")
    ap.add_argument("--same-kernel", action="store_true",
                    help="give NumPy and scikit-learn the OPENBLAS_CORETYPE "
                         "set for mmcl too (default: they run the kernel "
                         "OpenBLAS picks for them, as a user's would)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: N = 20000, 3 runs")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--worker", choices=["numpy", "sklearn"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--x1", help=argparse.SUPPRESS)
    ap.add_argument("--x2", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.n, args.runs = 20000, 3

    exe = os.path.join(args.build, "bench", "cca_bench")
    if not os.path.exists(exe):
        sys.exit(f"{exe} not found: configure with -DMMCL_BUILD_BENCH=ON "
                 "and build (or pass --build)")
    x1, x2 = make_data(args.workdir, args.n)
    coretype = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",
                                               "OPENBLAS_L2_SIZE")}
    unset = (any(v is not None for v in coretype.values())
             and not args.same_kernel)
    common = ["--n", str(args.n), "--k", str(args.k), "--x1", x1,
              "--x2", x2]
    me = [sys.executable, os.path.abspath(__file__)]
    rows = []
    for t in [int(v) for v in args.threads.split(",")]:
        lines, load_mm = run([exe, "--threads", str(t), "--runs",
                              str(args.runs + 1), "--eps", str(args.eps)]
                             + (["--chunk", str(args.chunk)] if args.chunk
                                else []) + common, thread_env(t, False))
        mm = {l["kind"]: l for l in lines}
        # The first fit is a warm-up: drop it from the median.
        mm_runs = [l for l in lines if l["kind"] == "cca_run"][1:]
        mm["cca"]["median_s"] = statistics.median(
            l["seconds"] for l in mm_runs)
        lines, load_np = run(me + ["--worker", "numpy", "--runs",
                                   str(args.runs), "--eps", str(args.eps)]
                             + common, thread_env(t, unset))
        npy, sk, load_sk = lines[0], None, 0.0
        if not args.no_sklearn:
            lines, load_sk = run(me + ["--worker", "sklearn", "--sk-runs",
                                       str(args.sk_runs), "--sk-max-iter",
                                       str(args.sk_max_iter), "--sk-tol",
                                       str(args.sk_tol)] + common,
                                 thread_env(t, unset), max_tries=2)
            sk = lines[0]
        ref = np.array(npy["rho"])
        row = {"threads": t,
               "mmcl_s": mm["cca"]["median_s"],
               "mmcl_moments_s": statistics.median(
                   r["moments_s"] for r in mm_runs),
               "mmcl_solve_s": statistics.median(
                   r["solve_s"] for r in mm_runs),
               "numpy_s": statistics.median(npy["times"]),
               "mmcl_rho": mm["cca"]["rho"], "numpy_rho": npy["rho"],
               "numpy_rho_eps0": npy["rho_eps0"],
               "max_diff_mmcl_numpy": float(np.max(np.abs(
                   np.array(mm["cca"]["rho"]) - ref))),
               "others_load_max": max(load_mm, load_np, load_sk),
               "mmcl_blas": mm["blas"]["describe"],
               "mmcl_chunk": mm["cca"]["chunk"],
               "numpy_pools": npy["pools"]}
        if sk:
            row.update({
                "sklearn_s": statistics.median(sk["times"]),
                "sklearn_rho": sk["rho"], "sklearn_n_iter": sk["n_iter"],
                "sklearn_converged": sk["converged"],
                "sklearn_version": sk["sklearn"],
                "max_diff_sklearn_numpy_eps0": float(np.max(np.abs(
                    np.array(sk["rho"]) - np.array(npy["rho_eps0"]))))})
        rows.append(row)

    m = machine()
    print(f"machine: {m['nproc']} x {m['cpu']}; python {m['python']}, "
          f"numpy {m['numpy']}"
          + (f", scikit-learn {rows[0]['sklearn_version']}"
             if "sklearn_version" in rows[0] else ""))
    print(f"mmcl BLAS: {rows[0]['mmcl_blas']}")
    print("numpy pools: " + "; ".join(
        f"{p['internal_api']} {p.get('version') or ''} "
        f"{p.get('architecture') or ''}".strip()
        for p in rows[0]["numpy_pools"] or []))
    print(f"OPENBLAS_CORETYPE/L2_SIZE: {coretype} "
          f"({'unset for numpy/sklearn' if unset else 'the same for all' if args.same_kernel else 'not set'})")
    print(f"N = {args.n}, d1 = {D1}, d2 = {D2}, k = {args.k}, ridge eps = "
          f"{args.eps}, mmcl batches of {rows[0]['mmcl_chunk']} rows; medians of {args.runs} fits (sklearn: "
          f"{args.sk_runs}, max_iter {args.sk_max_iter}, tol {args.sk_tol})")
    print("threads | mmcl s (moments + solve) | numpy s | sklearn s | "
          "numpy/mmcl | sklearn/mmcl | max|rho diff| mmcl-numpy | "
          "sklearn-numpy(eps 0) | others' load")
    for r in rows:
        sk_s = r.get("sklearn_s")
        print(" | ".join([
            f"{r['threads']}",
            f"{r['mmcl_s']:.4f} ({r['mmcl_moments_s']:.4f} + "
            f"{r['mmcl_solve_s']:.4f})",
            f"{r['numpy_s']:.4f}",
            f"{sk_s:.2f}" if sk_s else "-",
            f"{r['numpy_s'] / r['mmcl_s']:.2f}x",
            f"{sk_s / r['mmcl_s']:.0f}x" if sk_s else "-",
            f"{r['max_diff_mmcl_numpy']:.2e}",
            f"{r['max_diff_sklearn_numpy_eps0']:.2e}" if sk_s else "-",
            f"{r['others_load_max']:.2f}"]))
    r = rows[0]
    print("rho mmcl:    " + " ".join(f"{v:.6f}" for v in r["mmcl_rho"]))
    print("rho numpy:   " + " ".join(f"{v:.6f}" for v in r["numpy_rho"]))
    print("rho numpy 0: " + " ".join(f"{v:.6f}" for v in r["numpy_rho_eps0"]))
    if "sklearn_rho" in r:
        print("rho sklearn: " + " ".join(f"{v:.6f}" for v in r["sklearn_rho"])
              + f"  (n_iter {r['sklearn_n_iter']}, converged "
              f"{r['sklearn_converged']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": m, "env": coretype, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
