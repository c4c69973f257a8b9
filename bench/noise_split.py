#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""How much of each modality's information loss is noise, on the real
Sentinel-1/2 pairs of ../shared/data (docs/noise.md).

For each pair: `mmcl train --objective cca --dim K --patch 3` (with and
without `--sar-enl 4.4`, the ENL of Sentinel-1 IW GRD), then `mmcl
infoloss --report`, and one row per modality from the report: the mean
infoloss, its noise floor, the noise and structured shares, the mean
excess and its structured part. Prints a Markdown table.

Usage: /usr/bin/python3 bench/noise_split.py [--build build] [--dim 2]
       [--data ../shared/data] [--work /tmp/noise_split]
"""
import argparse
import json
import os
import platform
import subprocess

PAIRS = [
    ("Spain (Sen1Floods11)", "sen1floods11_spain_7370579",
     "Spain_7370579_S2Hand.tif", "Spain_7370579_S1Hand.tif"),
    ("BigEarthNet 29UPU_36_85", "bigearthnet_29UPU_36_85",
     "derived/S2_12band_10m.vrt", "derived/S1_VV_VH.vrt"),
    ("BigEarthNet 33UUP_87_48", "bigearthnet_33UUP_87_48",
     "derived/S2_12band_10m.vrt", "derived/S1_VV_VH.vrt"),
    ("BigEarthNet 35VPK_69_24", "bigearthnet_35VPK_69_24",
     "derived/S2_12band_10m.vrt", "derived/S1_VV_VH.vrt"),
]


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(here, "..", "build"))
    ap.add_argument("--data",
                    default=os.path.join(here, "..", "..", "shared", "data"))
    ap.add_argument("--work", default="/tmp/noise_split")
    ap.add_argument("--dim", type=int, default=2)
    a = ap.parse_args()
    mmcl = os.path.join(a.build, "mmcl")
    os.makedirs(a.work, exist_ok=True)
    version = subprocess.run([mmcl, "--version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    print("CPU: %s; %s" % (cpu_name(), version.replace("\n", "; ")))
    print("cca, k = %d, 3 x 3 patches; shares of the mean infoloss\n" % a.dim)
    print("| pair | SAR noise | modality | infoloss | noise floor | noise "
          "share | structured share | excess | structured excess |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for label, folder, opt, sar in PAIRS:
        opt = os.path.join(a.data, folder, opt)
        sar = os.path.join(a.data, folder, sar)
        if not (os.path.exists(opt) and os.path.exists(sar)):
            print("| %s | absent | | | | | | | |" % label)
            continue
        for enl in ("0", "4.4"):
            model = os.path.join(a.work, "%s_%s.mmcl" % (folder, enl))
            loss = os.path.join(a.work, "%s_%s.tif" % (folder, enl))
            subprocess.run([mmcl, "train", "-q", "--overwrite", "--dim",
                            str(a.dim), "--patch", "3", "--sar-enl", enl,
                            opt, sar, model], check=True,
                           capture_output=True)
            subprocess.run([mmcl, "infoloss", "-q", "--overwrite", "--report",
                            loss + ".json", model, opt, sar, loss],
                           check=True, capture_output=True)
            with open(loss + ".json") as f:
                rep = json.load(f)
            how = ("between neighbours" if enl == "0"
                   else "ENL %s" % enl)
            for mod in ("optical", "sar"):
                r = rep[mod]
                print("| %s | %s | %s | %.3f | %.3f | %.2f | %.2f | %.3f | "
                      "%.3f |" % (label, how, mod, r["mean_infoloss"],
                                  r["noise_floor"], r["noise_share"],
                                  r["structured_share"], r["mean_excess"],
                                  r["mean_structured_excess"]))


if __name__ == "__main__":
    main()
