#!/usr/bin/env python3
"""How far a bf16 map is from the f32 map of the same inputs.

    /usr/bin/python3 bench/precision_error.py F32.tif BF16.tif

Embeddings (PRODUCT=embedding in the MMCL metadata): per pixel, the
relative error of the embedding vector ||e_bf16 - e_f32|| / ||e_f32||
(median, 99th percentile, max), the Frobenius relative error over all
valid pixels, and per component the absolute error relative to that
band's standard deviation (over the valid pixels of the f32 map: mean
and max over the pixels, the worst band quoted). Information-loss maps:
per band the mean and max absolute error (standardized variance units).
Prints one JSON object; pixels valid in one map and not the other are
counted as "validity_mismatch".
"""
import json
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()


def rows(ds, step=256):
    for y in range(0, ds.RasterYSize, step):
        h = min(step, ds.RasterYSize - y)
        a = ds.ReadAsArray(0, y, ds.RasterXSize, h)
        yield a if a.ndim == 3 else a[None]


def embedding(fa, fb):
    n_b = fa.RasterCount
    # the bands' standard deviations over the valid f32 pixels (2 passes)
    s1 = np.zeros(n_b)
    s2 = np.zeros(n_b)
    n = 0
    for a in rows(fa):
        v = np.isfinite(a).all(0)
        x = a[:, v].astype(np.float64)
        s1 += x.sum(1)
        s2 += (x * x).sum(1)
        n += int(v.sum())
    std = np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 0))
    rel, mismatch = [], 0
    num = den = 0.0
    comp_max = np.zeros(n_b)
    comp_sum = np.zeros(n_b)
    for a, b in zip(rows(fa), rows(fb)):
        va, vb = np.isfinite(a).all(0), np.isfinite(b).all(0)
        mismatch += int((va != vb).sum())
        v = va & vb
        x, z = a[:, v].astype(np.float64), b[:, v].astype(np.float64)
        d = z - x
        nx = np.linalg.norm(x, axis=0)
        nd = np.linalg.norm(d, axis=0)
        rel.append(nd / np.maximum(nx, 1e-30))
        num += float((nd ** 2).sum())
        den += float((nx ** 2).sum())
        ad = np.abs(d) / np.maximum(std, 1e-30)[:, None]
        if ad.size:
            comp_max = np.maximum(comp_max, ad.max(1))
            comp_sum += ad.sum(1)
    rel = np.concatenate(rel)
    comp_mean = comp_sum / max(len(rel), 1)
    return {
        "kind": "embedding", "bands": n_b, "valid_pixels": int(len(rel)),
        "validity_mismatch": mismatch,
        "pixel_rel_median": float(np.median(rel)),
        "pixel_rel_p99": float(np.percentile(rel, 99)),
        "pixel_rel_max": float(rel.max()),
        "frobenius_rel": float(np.sqrt(num / den)),
        "component_abs_over_std_mean": float(comp_mean.mean()),
        "component_abs_over_std_mean_worst_band": float(comp_mean.max()),
        "component_abs_over_std_max": float(comp_max.max()),
    }


def infoloss(fa, fb):
    out = {"kind": "infoloss", "bands": {}}
    mismatch = 0
    for i in range(fa.RasterCount):
        name = fa.GetRasterBand(i + 1).GetDescription() or str(i + 1)
        s, m, n = 0.0, 0.0, 0
        for y in range(0, fa.RasterYSize, 256):
            h = min(256, fa.RasterYSize - y)
            a = fa.GetRasterBand(i + 1).ReadAsArray(0, y, fa.RasterXSize, h)
            b = fb.GetRasterBand(i + 1).ReadAsArray(0, y, fa.RasterXSize, h)
            va, vb = np.isfinite(a), np.isfinite(b)
            mismatch += int((va != vb).sum())
            d = np.abs(a - b)[va & vb].astype(np.float64)
            if d.size:
                s += float(d.sum())
                m = max(m, float(d.max()))
                n += d.size
        out["bands"][name] = {"mean_abs": s / max(n, 1), "max_abs": m}
    out["validity_mismatch"] = mismatch
    out["mean_abs_worst_band"] = max(b["mean_abs"]
                                     for b in out["bands"].values())
    return out


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    fa, fb = gdal.Open(sys.argv[1]), gdal.Open(sys.argv[2])
    if (fa.RasterXSize, fa.RasterYSize, fa.RasterCount) != \
            (fb.RasterXSize, fb.RasterYSize, fb.RasterCount):
        raise SystemExit("precision_error: %s and %s differ in size or bands"
                         % (sys.argv[1], sys.argv[2]))
    kind = fa.GetMetadata("MMCL").get("PRODUCT")
    res = infoloss(fa, fb) if kind == "infoloss" else embedding(fa, fb)
    res["precisions"] = [fa.GetMetadata("MMCL").get("PRECISION"),
                         fb.GetMetadata("MMCL").get("PRECISION")]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
