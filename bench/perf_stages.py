#!/usr/bin/env python3
"""Where the CPU of a `perf record` of `mmcl embed` goes, by stage.

    perf record -F 499 -o embed.perf -- build/mmcl embed ... --threads 1
    /usr/bin/python3 bench/perf_stages.py embed.perf

Reads `perf report --sort pid,dso,sym` (self samples, per thread). Debian's
libtiff and libzstd have no symbols, so a sample is put in a stage by its
thread's role and its library:

  worker(s)  the threads running oneDNN's JIT kernels: "encoders" (the
             JIT code and libdnnl), "bf16 rounding" (mmcl__bf16_round),
             "patches + compose" (mmcl's per-cell code: patch vectors,
             validity, output bands), the rest of the worker
  commit     of the other threads, the one with the most libzstd + libtiff
             samples beside the main thread: compressing and writing the
             output (libtiff's predictor, ZSTD, GDAL)
  main       the process' first thread: start-up, and at the end what
             follows the tiles (statistics, closing the output)
  reader     the other threads: reading the inputs (decoding, resampling,
             validity)

Prints the share of each stage and each thread's libraries.
"""
import collections
import re
import subprocess
import sys


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = subprocess.run(
        ["perf", "report", "-i", sys.argv[1], "--stdio", "--no-children",
         "--sort", "pid,dso,sym", "--percent-limit", "0", "-F",
         "overhead,pid,dso,sym"],
        capture_output=True, text=True, check=True).stdout
    line_re = re.compile(
        r"^\s*([\d.]+)%\s+(\d+):(\S+)\s+(.+?)\s+\[.\]\s+(.*)$")
    rows = []
    for line in out.splitlines():
        m = line_re.match(line)
        if m:
            pct, tid, _comm, dso, sym = m.groups()
            rows.append((float(pct), int(tid), dso.strip(), sym.strip()))
    by_thread = collections.defaultdict(collections.Counter)
    for pct, tid, dso, _ in rows:
        by_thread[tid][dso] += pct
    main_tid = min(by_thread)
    workers = {t for t, c in by_thread.items()
               if any(d.startswith("[JIT]") or "dnnl" in d for d in c)
               and t != main_tid}
    codec = {t: sum(v for d, v in c.items() if "zstd" in d or "tiff" in d)
             for t, c in by_thread.items() if t != main_tid
             and t not in workers}
    commit = max(codec, key=codec.get) if codec else None
    stages = collections.Counter()
    for pct, tid, dso, sym in rows:
        if tid in workers:
            if dso.startswith("[JIT]") or "dnnl" in dso or "gomp" in dso:
                st = "worker: encoders (oneDNN)"
            elif "mmcl__bf16_round" in sym:
                st = "worker: bf16 rounding"
            elif "libmmcl" in dso:
                st = "worker: patches + compose (mmcl)"
            else:
                st = "worker: other (libc copies, kernel)"
        elif tid == commit:
            st = "commit: compress + write output"
        elif tid == main_tid:
            if "tiff" in dso or "zstd" in dso or "libgdal" in dso:
                st = "main: GDAL (statistics, closing)"
            else:
                st = "main: other (start-up, model)"
        else:
            st = "reader: read inputs"
        stages[st] += pct
    total = sum(stages.values())
    print("| stage | share of CPU samples |")
    print("|---|---:|")
    for st, pct in sorted(stages.items()):
        print(f"| {st} | {100 * pct / total:.1f} % |")
    print()
    role = {main_tid: "main", commit: "commit"}
    for t in workers:
        role[t] = "worker"
    for tid, c in sorted(by_thread.items()):
        top = ", ".join(f"{d} {100 * p / total:.1f} %"
                        for d, p in c.most_common(4))
        print(f"  {tid} ({role.get(tid, 'reader')}): "
              f"{100 * sum(c.values()) / total:.1f} % ({top})")


if __name__ == "__main__":
    main()
