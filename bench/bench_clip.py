#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark of `clip` training throughput: mmcl against PyTorch.

Both train the same model on the same samples: two towers
d1 -> 256 -> 256 -> 64 (optical, 3x3 patches of 13 bands: d1 = 117) and
d2 -> 256 -> 256 -> 64 (SAR, 3x3 patches of 2 bands: d2 = 18) with ReLU,
L2-normalised outputs, symmetric InfoNCE (CLIP) at a fixed temperature 0.1,
AdamW (lr 1e-3, weight decay 1e-4 on the weights only, betas 0.9/0.999,
eps 1e-8), batch 1024, a fresh shuffle per epoch, the last partial batch
dropped (N is a multiple of the batch here anyway).

The samples (N pairs, X1 ~ N(0, 1), X2 = X1[:, :8] A^T + 0.3 noise) are
written once as raw float32 files in --workdir and read by both sides.

Each measurement is a fresh process with OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS set to the thread count (and
torch.set_num_threads / mmcl's n_threads on top): PyTorch's own kernels
use OpenMP, its matrix products go to the system BLAS (OpenBLAS, the same
library mmcl links). With 2 threads mmcl runs each step's two row blocks on
two workers of its own, each with a single-threaded BLAS (algorithms/clip.h);
with 1 it runs them one after the other. The first epoch of every run is
a warm-up and is not in samples/s, which is the median over the later
epochs of all --runs runs, the two tools' runs interleaved.

The GEMM rate is the FLOPs of the forward and backward matrix products of
one step (both towers, no input gradient, plus the B x B logits and their
two backward products) times steps/s; it is compared with the sgemm peak
that clip_bench measures in the same run (cblas_sgemm, 1024^3, best of 7,
same thread count).

Time to a result ("s to L3" in the table): the wall time each tool needs
to get its training loss down to the loss PyTorch has at the end of its
3rd epoch (--target-epoch). Per-epoch losses are means over an epoch,
i.e. the loss around its middle, and would place a crossing only to
within an epoch, so both workers report the loss of every step and the
time at its end (from the start of the first step: the first epoch,
untimed for samples/s, counts here, since a user waits for it). With
w = a quarter of an epoch (--window; 16 steps at the default N and
batch):
  - target = the mean of PyTorch's last w step losses of epoch 3, i.e.
    its loss at the end of epoch 3 smoothed over w steps (median over
    its runs; from the "torch" setting at every thread count);
  - a tool's time = the end time of the first step at which the mean of
    its last w step losses is <= target (median over its runs); the
    table also gives that step in epochs. No interpolation: the crossing
    is found to one step, and both tools' trailing means lag their
    curves by the same w/2 steps. PyTorch itself crosses at or, by
    step-to-step noise, a little before the end of its epoch 3.
The step losses vary by about +-0.015 from step to step on the plateau
of epochs 2-4, where the loss falls by ~0.04 per epoch, so a crossing
there moves by a few steps with the seed; the time ratio against the
best PyTorch setting is the column to compare with the issue's target
(mmcl at most 2/3 of PyTorch's time).

Where it ran: the tables give the CPU (model name, vendor, family/model/
stepping and the ISA flags that decide which OpenBLAS kernel fits, from
/proc/cpuinfo), the kernel each tool's OpenBLAS chose (mmcl:
openblas_get_corename() from clip_bench; PyTorch: threadpoolctl's
internal_api, version and architecture of every pool, with their thread
counts) and the thread settings. The script sets only OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS: both tools inherit everything
else from the caller, OPENBLAS_CORETYPE included, so each runs as it
would by default for a user of this machine (OpenBLAS 0.3.21 picks its
kernel at load time and can pick a slow one; set OPENBLAS_CORETYPE for
the whole run to compare kernels, never for one tool only).

Run with Debian's python3 (python3-torch, python3-numpy, and
python3-threadpoolctl for the kernel report) after building with
-DMMCL_BUILD_BENCH=ON:
    /usr/bin/python3 bench/bench_clip.py [--build build] [--quick]
"""

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
D1, D2, HIDDEN, DIM = 117, 18, 256, 64


def step_flops(batch):
    """FLOPs of the GEMMs of one training step (same count as clip_bench)."""
    def tower(sizes):
        f = 0.0
        for layer in range(len(sizes) - 1):
            mnk = batch * sizes[layer] * sizes[layer + 1]
            f += 2.0 * mnk * (3 if layer > 0 else 2)  # fwd, dW, dx (not layer 0)
        return f
    return (tower([D1, HIDDEN, HIDDEN, DIM]) + tower([D2, HIDDEN, HIDDEN, DIM])
            + 3 * 2.0 * batch * batch * DIM)


def make_data(workdir, n, seed=1):
    """Writes x1.f32 (n, D1) and x2.f32 (n, D2) once; returns the paths."""
    os.makedirs(workdir, exist_ok=True)
    p1 = os.path.join(workdir, f"clip_x1_{n}.f32")
    p2 = os.path.join(workdir, f"clip_x2_{n}.f32")
    if not (os.path.exists(p1) and os.path.exists(p2)):
        rng = np.random.default_rng(seed)
        x1 = rng.standard_normal((n, D1), dtype=np.float32)
        a = rng.normal(0.0, 1.0 / 3.0, (D2, 8)).astype(np.float32)
        x2 = x1[:, :8] @ a.T + 0.3 * rng.standard_normal((n, D2), dtype=np.float32)
        x1.tofile(p1)
        x2.astype(np.float32).tofile(p2)
    return p1, p2


# ---- PyTorch worker (runs in its own process) ---------------------------

def torch_worker(args):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    n = args.n
    x1 = torch.from_numpy(np.fromfile(args.x1, dtype=np.float32).reshape(n, D1))
    x2 = torch.from_numpy(np.fromfile(args.x2, dtype=np.float32).reshape(n, D2))

    def tower(d):
        return torch.nn.Sequential(
            torch.nn.Linear(d, HIDDEN), torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN, DIM))

    f1, f2 = tower(D1), tower(D2)
    params = list(f1.parameters()) + list(f2.parameters())
    decay = [p for p in params if p.dim() == 2]
    no_decay = [p for p in params if p.dim() == 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 1e-4},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    b = args.batch
    steps = n // b
    labels = torch.arange(b)
    gen = torch.Generator().manual_seed(args.seed)
    rates, cpu_rates, losses = [], [], []
    step_loss, step_end = [], []
    start = time.perf_counter()
    for epoch in range(args.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(steps):
            idx = perm[s * b:(s + 1) * b]
            z1 = F.normalize(f1(x1[idx]), dim=1)
            z2 = F.normalize(f2(x2[idx]), dim=1)
            logits = z1 @ z2.t() / args.tau
            loss = 0.5 * (F.cross_entropy(logits, labels)
                          + F.cross_entropy(logits.t(), labels))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()
            total += value
            step_loss.append(value)
            step_end.append(time.perf_counter() - start)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        losses.append(total / steps)
        if epoch > 0:
            rates.append(steps * b / dt)
            cpu_rates.append(steps * b / cpu)
    kernel = None
    try:
        from threadpoolctl import threadpool_info
        kernel = [{k: i.get(k) for k in ("internal_api", "version",
                                          "architecture", "num_threads")}
                  for i in threadpool_info()]
    except ImportError:
        pass
    print(json.dumps({"kind": "torch", "threads": args.threads,
                      "torch_threads": torch.get_num_threads(),
                      "samples_per_s": rates,
                      "samples_per_cpu_s": cpu_rates, "loss": losses,
                      "steps_per_epoch": steps,
                      "step_loss": [round(x, 6) for x in step_loss],
                      "step_end_s": [round(x, 5) for x in step_end],
                      "torch": torch.__version__, "pools": kernel}))


# ---- Orchestration --------------------------------------------------------

def thread_env(threads, omp=None):
    """The caller's environment with the thread counts set; nothing else
    (OPENBLAS_CORETYPE included) is added or removed, so both tools run
    as they would for a user of this machine."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    if omp is not None:
        env["OMP_NUM_THREADS"] = str(omp)
    return env


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def cpu_busy_seconds():
    """Busy CPU time of the whole machine so far (all cores), and steal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, v[7] / hz


def run(cmd, env):
    """Runs cmd; returns (its JSON lines, the CPU that OTHER processes used
    meanwhile, in cores, plus hypervisor steal): the machine is shared, so
    a run is trusted only when the rest of it was idle."""
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
    others = max(0.0, (busy1 - busy0 - own) / wall)
    return json_lines(p.stdout), others + (steal1 - steal0) / wall


def run_clean(cmd, env, max_tries, limit):
    """run() until the other processes used < limit cores (at most
    max_tries times); returns the lines, their 'others' load and tries."""
    for attempt in range(1, max_tries + 1):
        lines, others = run(cmd, env)
        if others < limit or attempt == max_tries:
            break
        print(f"  (busy machine: others used {others:.2f} cores; retry)",
              file=sys.stderr)
        time.sleep(5)
    return lines, others, attempt


# ISA flags worth recording: they decide which OpenBLAS kernel fits.
ISA_FLAGS = ("sse3", "avx", "avx2", "fma", "avx512f", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "hypervisor")


def machine():
    """CPU model and ISA of the first processor in /proc/cpuinfo."""
    info = {"nproc": os.cpu_count(), "cpu": platform.processor(),
            "python": platform.python_version(), "numpy": np.__version__}
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # end of the first processor
                k, _, v = line.partition(":")
                fields.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    if "model name" in fields:
        info["cpu"] = fields["model name"]
    info["vendor"] = fields.get("vendor_id")
    info["family_model_stepping"] = "/".join(
        fields.get(k, "?") for k in ("cpu family", "model", "stepping"))
    flags = set(fields.get("flags", "").split())
    info["isa"] = [f for f in ISA_FLAGS if f in flags]
    return info


def kernel_text(label, line):
    """One line on the BLAS kernel and threads a tool ran with."""
    if line is None:
        return f"{label}: (no report)"
    if line["kind"] == "blas":
        t = line["threads"]
        how = ("two workers of its own, each on a single-threaded OpenBLAS"
               if t == 2 else f"OpenBLAS on {t} thread(s)")
        return (f"{label}: OpenBLAS kernel {line.get('corename', '?')}; "
                f"n_threads {t} = {how}")
    pools = "; ".join(
        " ".join(str(p[k]) for k in ("internal_api", "version",
                                     "architecture") if p.get(k))
        + f" ({p.get('num_threads')} threads)"
        for p in line.get("pools") or [])
    return (f"{label}: torch.set_num_threads({line['torch_threads']}); "
            f"{pools or 'threadpoolctl not installed: kernel unknown'}")


def trailing_mean(values, i, w):
    """Mean of the w values ending at index i."""
    return statistics.fmean(values[i - w + 1:i + 1])


def time_to_loss(step_loss, step_end, target, w):
    """(seconds, steps) from the start of training to the end of the first
    step whose trailing w-step mean loss is <= target; (None, None) when
    the run never gets there."""
    for i in range(w - 1, len(step_loss)):
        if trailing_mean(step_loss, i, w) <= target:
            return step_end[i], i + 1
    return None, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build folder with bench/clip_bench")
    ap.add_argument("--workdir", default="/tmp/mmcl_bench")
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=4,
                    help="per run, the first one a warm-up for samples/s")
    ap.add_argument("--target-epoch", type=int, default=3,
                    help="time to PyTorch's loss at the end of this epoch")
    ap.add_argument("--window", type=int, default=0,
                    help="steps in the trailing mean of the loss (default: "
                    "a quarter of an epoch)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: N = 8192, 4 epochs, 1 run")
    ap.add_argument("--max-tries", type=int, default=4,
                    help="re-run a measurement while other processes use "
                    "more than 0.15 cores (shared machine)")
    ap.add_argument("--max-load", type=float, default=0.15,
                    help="cores that other processes may use during an "
                    "accepted run")
    ap.add_argument("--compare-exe", action="append", default=[],
                    metavar="LABEL=PATH",
                    help="also time another clip_bench build (e.g. with "
                    "patched kernels) under the same conditions")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--worker", choices=["torch"], help=argparse.SUPPRESS)
    ap.add_argument("--x1", help=argparse.SUPPRESS)
    ap.add_argument("--x2", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "torch":
        args.threads = int(args.threads)
        torch_worker(args)
        return
    if args.quick:
        args.n, args.epochs, args.runs = 8192, 4, 1
    steps = args.n // min(args.batch, args.n)
    window = args.window or max(1, steps // 4)
    if not 1 <= args.target_epoch <= args.epochs or window > steps:
        sys.exit("need 1 <= --target-epoch <= --epochs and --window <= the "
                 f"steps of an epoch ({steps})")

    exe = os.path.join(args.build, "bench", "clip_bench")
    if not os.path.exists(exe):
        sys.exit(f"{exe} not found: configure with -DMMCL_BUILD_BENCH=ON "
                 "and build (or pass --build)")
    x1, x2 = make_data(args.workdir, args.n, args.seed)
    # Recorded, not changed: both tools inherit them (the tables must say
    # which kernel each tool ran, and a variable set by the caller applies
    # to both alike).
    blas_env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",
                                               "OPENBLAS_L2_SIZE",
                                               "OPENBLAS_VERBOSE")}
    # clip_bench is a bare program linked to the library: it runs the
    # kernel OpenBLAS detects. The mmcl program runs the kernel it chooses
    # (OPENBLAS_CORETYPE set and run again when OpenBLAS fell back to a
    # kernel the CPU outgrows), so mmcl's side gets that kernel, as
    # `mmcl train` would; PyTorch keeps its default environment.
    mmcl_kernel = None
    if not blas_env["OPENBLAS_CORETYPE"]:
        prog = os.path.join(args.build, "mmcl")
        if os.path.exists(prog):
            v = subprocess.run([prog, "--version"], capture_output=True,
                               text=True).stdout
            m = re.search(r"kernel (\w+) \(chosen by mmcl", v)
            mmcl_kernel = m.group(1) if m else None
    common = ["--n", str(args.n), "--batch", str(args.batch),
              "--epochs", str(args.epochs), "--tau", str(args.tau),
              "--lr", str(args.lr), "--seed", str(args.seed)]
    threads = [int(t) for t in args.threads.split(",")]
    extra_exes = [tuple(v.split("=", 1)) for v in args.compare_exe]
    results = {"machine": machine(), "env": blas_env,
               "flops_per_step": step_flops(args.batch),
               "target_epoch": args.target_epoch, "window_steps": window,
               "steps_per_epoch": steps, "rows": []}
    flops_per_sample = step_flops(args.batch) / args.batch
    me = [sys.executable, os.path.abspath(__file__), "--worker", "torch",
          "--x1", x1, "--x2", x2] + common
    for t in threads:
        # (label, command, environment); the tools' runs are interleaved.
        mmcl_env = thread_env(t)
        if mmcl_kernel:
            mmcl_env["OPENBLAS_CORETYPE"] = mmcl_kernel
        tools = [("mmcl", [exe, "--threads", str(t), "--runs", "1",
                           "--x1", x1, "--x2", x2] + common, mmcl_env)]
        tools += [(label, [path, "--threads", str(t), "--runs", "1",
                           "--no-peak", "--no-gemm", "--x1", x1,
                           "--x2", x2] + common, thread_env(t))
                  for label, path in extra_exes]
        tools.append(("torch", me + ["--threads", str(t)], thread_env(t)))
        if t > 1:  # PyTorch with only BLAS threads (no OpenMP pool)
            tools.append(("torch-blas", me + ["--threads", "1"],
                          thread_env(t, omp=1)))
        rates = {label: [] for label, _, _ in tools}
        cpu_rates = {label: [] for label, _, _ in tools}
        curves = {label: [] for label, _, _ in tools}  # (loss, end) per run
        loss, others, info, kernel = {}, [], {}, {}
        for r in range(args.runs):
            for label, cmd, env in tools:
                if label == "mmcl" and r < args.runs - 1:
                    cmd = cmd + ["--no-peak", "--no-gemm"]
                lines, load, _ = run_clean(cmd, env, args.max_tries,
                                           args.max_load)
                others.append(load)
                print(f"  {t} thread(s), run {r + 1}, {label}: " + ", ".join(
                    f"{x:.0f}" for l in lines if "samples_per_s" in l
                    for x in l["samples_per_s"]) + f" samples/s (others' "
                    f"load {load:.2f})", file=sys.stderr)
                for line in lines:
                    if line["kind"] in ("clip", "torch"):
                        rates[label] += line["samples_per_s"]
                        cpu_rates[label] += line.get("samples_per_cpu_s", [])
                        loss[label] = line["loss"]
                        curves[label].append((line["step_loss"],
                                              line["step_end_s"]))
                    if line["kind"] in ("blas", "torch"):
                        kernel.setdefault(label, line)
                    if line["kind"] == "torch":
                        info["torch"] = line
                    elif label == "mmcl":
                        info[line["kind"]] = line
        med = {label: statistics.median(v) for label, v in rates.items()}
        cpu_med = {label: statistics.median(v)
                   for label, v in cpu_rates.items()}
        best_torch = max(v for k, v in med.items() if k.startswith("torch"))

        # Time to a result: PyTorch's loss at the end of its target epoch
        # (the mean of its last `window` steps there), and when each tool's
        # trailing mean first gets down to it.
        end = args.target_epoch * steps
        target = statistics.median(trailing_mean(sl, end - 1, window)
                                   for sl, _ in curves["torch"])
        reach = {}
        for label, runs in curves.items():
            got = [time_to_loss(sl, se, target, window) for sl, se in runs]
            if all(s is not None for s, _ in got):
                reach[label] = {
                    "s": statistics.median(s for s, _ in got),
                    "epochs": statistics.median(k for _, k in got) / steps,
                    "runs_s": [s for s, _ in got]}
            else:
                reach[label] = None
        torch_reach = [v["s"] for k, v in reach.items()
                       if k.startswith("torch") and v]
        time_ratio = (reach["mmcl"]["s"] / min(torch_reach)
                      if reach["mmcl"] and torch_reach else None)

        row = {"threads": t, "samples_per_s": med, "rates": rates,
               "samples_per_cpu_s": cpu_med, "cpu_rates": cpu_rates,
               "loss": loss, "ratio_vs_best_torch": med["mmcl"] / best_torch,
               "target_loss": target, "time_to_target": reach,
               "time_ratio_vs_best_torch": time_ratio,
               "gemm_gflops": {k: v * flops_per_sample / 1e9
                               for k, v in med.items()},
               "ms_per_step": {k: 1e3 * args.batch / v
                               for k, v in med.items()},
               "sgemm_peak_gflops": info["sgemm_peak"]["gflops"],
               "gemm_only_ms_per_step": info["gemm_only"]["ms_per_step"],
               "others_load_max": max(others),
               "mmcl_blas": info["blas"]["describe"],
               "kernels": {k: kernel_text(k, kernel.get(k))
                           for k in rates},
               "torch_version": info["torch"]["torch"],
               "torch_pools": info["torch"]["pools"]}
        results["rows"].append(row)

    m = results["machine"]
    r0 = results["rows"][0]
    print(f"machine: {m['nproc']} x {m['cpu']} ({m['vendor']}, family/model/"
          f"stepping {m['family_model_stepping']}; {' '.join(m['isa'])}); "
          f"python {m['python']}, numpy {m['numpy']}, "
          f"torch {r0['torch_version']}")
    print(f"mmcl BLAS: {r0['mmcl_blas']}")
    if mmcl_kernel:
        print(f"mmcl runs with OPENBLAS_CORETYPE={mmcl_kernel}, the kernel "
              "the mmcl program chooses on this CPU (mmcl --version)")
    print("environment (inherited by both tools; the script sets only the "
          "thread counts): " + ", ".join(
              f"{k}={v if v is not None else '(unset)'}"
              for k, v in blas_env.items()))
    print("kernels and threads:")
    for r in results["rows"]:
        for text in r["kernels"].values():
            print(f"  {r['threads']} thread(s), {text}")
    print(f"N = {args.n}, batch {args.batch}, {args.epochs} epochs per run "
          f"(first one not in samples/s), {args.runs} runs; towers "
          f"{D1}/{D2} -> {HIDDEN} -> {HIDDEN} -> {DIM}, ReLU, tau {args.tau}; "
          f"{step_flops(args.batch) / 1e9:.3f} GFLOP of GEMMs per step")
    print("torch = set_num_threads(T), OMP_NUM_THREADS = OPENBLAS_NUM_THREADS"
          " = T; torch-blas = set_num_threads(1), OMP_NUM_THREADS = 1, "
          "OPENBLAS_NUM_THREADS = T")
    print(f"to L{args.target_epoch} = wall seconds from the first step until "
          f"the mean loss of the last {window} steps is down to PyTorch's at "
          f"the end of epoch {args.target_epoch} (its last {window} steps "
          "there); epoch 1 included; median of the runs")
    labels = []
    for r in results["rows"]:
        labels += [k for k in r["samples_per_s"] if k not in labels]
    L = f"L{args.target_epoch}"
    print(" | ".join(["threads"] + [f"{k} samp/s" for k in labels]
                     + ["mmcl / best torch"]
                     + [f"{k} s to {L}" for k in labels]
                     + [f"mmcl / best torch (time to {L})", f"{L} loss",
                        "mmcl ms/step", "GEMMs only ms",
                        "mmcl GF/s", "torch GF/s", "sgemm peak GF/s",
                        "others' load"]))

    def reached(r, k):
        v = r["time_to_target"].get(k, "-")
        if v == "-":
            return "-"
        if v is None:
            return f"not in {args.epochs} ep"
        return f"{v['s']:.2f} ({v['epochs']:.2f} ep)"

    for r in results["rows"]:
        sp = r["samples_per_s"]
        tr = r["time_ratio_vs_best_torch"]
        print(" | ".join(
            [f"{r['threads']}"]
            + [f"{sp[k]:.0f}" if k in sp else "-" for k in labels]
            + [f"{r['ratio_vs_best_torch']:.2f}x"]
            + [reached(r, k) for k in labels]
            + [f"{tr:.2f}" if tr is not None else "-",
               f"{r['target_loss']:.4f}",
               f"{r['ms_per_step']['mmcl']:.1f}",
               f"{r['gemm_only_ms_per_step']:.1f}",
               f"{r['gemm_gflops']['mmcl']:.1f}",
               f"{max(v for k, v in r['gemm_gflops'].items() if k.startswith('torch')):.1f}",
               f"{r['sgemm_peak_gflops']:.1f}",
               f"{r['others_load_max']:.2f}"]))
    print("samples per CPU-second (all threads' CPU time; at 1 thread, "
          "what a run reaches on an idle machine):")
    for r in results["rows"]:
        print(f"  {r['threads']} thread(s): " + ", ".join(
            f"{k} {v:.0f}" for k, v in r["samples_per_cpu_s"].items()))
    for r in results["rows"]:
        for k, v in r["loss"].items():
            print(f"loss per epoch, {r['threads']} thread(s), {k}: "
                  + " ".join(f"{x:.3f}" for x in v))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
