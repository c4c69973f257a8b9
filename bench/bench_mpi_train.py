#!/usr/bin/env python3
"""MPI benchmark of `mmcl train` (bench/README.md, "MPI: train";
docs/mpi.md, "train on several ranks"): the same training on 1 process
with 1 thread, on 1 process with 2 threads (what a user runs on one
machine) and on 2 MPI ranks of 1 thread each, side by side, rounds
interleaved, medians quoted; the models compared byte for byte (they must
be equal).

Scene as bench/bench_mpi.py: `mmcl synth --size N --optical-bands 13
--sar-bands 2 --shared 2 --seed 1`. Two trainings: cca with the default
sample (100 000 patches of 3 x 3: the two reading passes over the scene
and the moments dominate), and clip with an MLP 64-64 on a smaller sample
and 2 epochs (the steps dominate).

    /usr/bin/python3 bench/bench_mpi_train.py --build build --work /tmp/bt \
        --size 2048 --repeat 3
"""
import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_embed import bench_scene, cpu_model, mmcl_blas, timed  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1")

TRAININGS = {
    "cca": ["--objective", "cca"],
    "clip": ["--objective", "clip", "--encoder", "mlp:64,64", "--dim", "16",
             "--samples", "30000", "--epochs", "2", "--batch", "1024"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE),
                                                    "build"))
    ap.add_argument("--work", default="/tmp/mmcl-bench-mpi-train")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mpirun", default="mpirun")
    a = ap.parse_args()
    mmcl = os.path.abspath(os.path.join(a.build, "mmcl"))
    os.makedirs(a.work, exist_ok=True)
    d = bench_scene(mmcl, a.work, a.size)
    mpirun = [a.mpirun, "--oversubscribe", "--bind-to", "none", "-n", "2"]
    kinds = {
        "1 process, --threads 1": ([mmcl], "1"),
        "1 process, --threads 2 (one machine)": ([mmcl], "2"),
        "mpirun -n 2, --threads 1": (mpirun + [mmcl], "1"),
    }
    res = {}
    for r in range(a.repeat):
        for name, extra in TRAININGS.items():
            for k, (prefix, threads) in kinds.items():
                out = os.path.join(a.work, "%s-%d.mmcl" %
                                   (name, list(kinds).index(k)))
                cmd = prefix + ["train", "-q", "--overwrite", "--threads",
                                threads] + extra + [d + "/optical.tif",
                                                    d + "/sar.tif", out]
                wall, _, cpu, _, _ = timed(cmd, env=ENV)
                res.setdefault((name, k), []).append((wall, cpu))
                print("round %d %-5s %-38s %.2f s" % (r + 1, name, k, wall),
                      file=sys.stderr)
    blas, kernel = mmcl_blas(mmcl)
    print("CPU: %s, %d cores online; %s (openblas_get_corename: %s)" %
          (cpu_model(), os.cpu_count(), blas, kernel))
    print("Scene %d^2, 13 + 2 bands; medians of %d; load average at the "
          "end: %.2f\n" % (a.size, a.repeat, os.getloadavg()[0]))
    print("| training | run | wall (s) | CPU (s) | wall vs 1 process, "
          "1 thread |")
    print("|---|---|---:|---:|---:|")
    for name in TRAININGS:
        base = statistics.median(w for w, _ in res[(name, list(kinds)[0])])
        for k in kinds:
            w = statistics.median(v for v, _ in res[(name, k)])
            c = statistics.median(v for _, v in res[(name, k)])
            print("| %s | %s | %.2f | %.2f | %.2fx |" % (name, k, w, c,
                                                        base / w))
        models = []
        for i in range(len(kinds)):
            with open(os.path.join(a.work, "%s-%d.mmcl" % (name, i)),
                      "rb") as f:
                models.append(f.read())
        print("| %s | models of the three runs | %s | | |" %
              (name, "equal, byte for byte" if len(set(models)) == 1
               else "DIFFER"))


if __name__ == "__main__":
    main()
