# SPDX-License-Identifier: MIT
"""`mmcl probe` against an independent reference, and on real data.

The reference recomputes the probe in NumPy from the published definition
(include/mmcl/probe.h): the pixels are found from the rasters themselves
(every valid optical, SAR and label value, patch 1), standardized with the
model's statistics from `mmcl info --json`, encoded with the weights read
by an independent safetensors reader (8-byte little-endian header length,
JSON header, float32 tensors), cut into the same spatial blocks, and fitted
with ridge on features standardized by each training fold (intercept not
penalised), in float64. Every figure must match `mmcl probe --samples 0`
to 1e-3.

    MMCL=build/mmcl python3 tests/cli/test_probe_ref.py -v
"""
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
from osgeo import gdal

from mmcl_cli import SAMPLE, SPAIN, read_safetensors, run

gdal.UseExceptions()

TOL = 1e-3


def read_raster(path):
    """(bands, pixels) float64 with NaN where a band's nodata is."""
    ds = gdal.Open(path)
    out = []
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        v = band.ReadAsArray().astype(np.float64).ravel()
        nd = band.GetNoDataValue()
        if nd is not None and not np.isnan(nd):
            v[v == nd] = np.nan
        out.append(v)
    return np.array(out), ds.RasterXSize, ds.RasterYSize


def ridge_cv(Z, T, blk, lam):
    """Pooled held-out predictions of ridge on fold-standardized features:
    for each block b, fit on the others: R = corr, (R + lam I) Bs = r,
    B = Bs / sd, b0 = mean(T) - B^T mu."""
    pred = np.empty_like(T)
    D = Z.shape[1]
    for b in np.unique(blk):
        tr = blk != b
        n = tr.sum()
        mu = Z[tr].mean(0)
        sd = Z[tr].std(0)
        const = sd ** 2 <= 1e-12 * (1 + mu ** 2)
        sd = np.where(const, 1.0, sd)
        Zs = (Z[tr] - mu) / sd
        Zs[:, const] = 0.0
        R = Zs.T @ Zs / n
        R[const, const] = 1.0
        tm = T[tr].mean(0)
        r = Zs.T @ (T[tr] - tm) / n
        Bs = np.linalg.solve(R + lam * np.eye(D), r)
        B = Bs / sd[:, None]
        pred[~tr] = (Z[~tr] - mu) @ B + tm
    return pred


class ProbeReference(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mmcl-probe-")
        cls.opt = os.path.join(SAMPLE, "optical.tif")
        # The SAR put on the optical grid once, so that NumPy reads the
        # very values the probe sees.
        cls.sar = os.path.join(cls.dir, "sar_on_grid.tif")
        run("align", "-q", cls.opt, os.path.join(SAMPLE, "sar.tif"), cls.sar)
        cls.models = {}
        for obj, extra in (("cca", []),
                           ("shared-private", ["--private-dim", "1"])):
            path = os.path.join(cls.dir, obj + ".mmcl")
            run("train", "-q", "--objective", obj, "--dim", "2", "--patch",
                "1", *extra, cls.opt, cls.sar, path)
            cls.models[obj] = path

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def reference(self, model, labels, band, task, blocks, ridge):
        meta = json.loads(run("info", "--json", model).stdout)["metadata"]
        t = {k: v.astype(np.float64) for k, v in
             read_safetensors(model)[1].items()}
        x1, W, H = read_raster(self.opt)
        x2, _, _ = read_raster(self.sar)
        lab, lw, lh = read_raster(labels)
        self.assertEqual((lw, lh), (W, H))
        y = lab[band - 1]
        ok = np.all(np.isfinite(x1), 0) & np.all(np.isfinite(x2), 0)
        ok &= np.isfinite(y)
        if task == "classes":
            ok &= y >= 0
        py, px = np.divmod(np.arange(W * H), W)
        px, py, y = px[ok], py[ok], y[ok]
        z1 = (x1[:, ok].T - meta["optical"]["mean"]) / meta["optical"]["std"]
        z2 = (x2[:, ok].T - meta["sar"]["mean"]) / meta["sar"]["std"]
        h1 = z1 @ t["encoder.optical.0.weight"].T + t["encoder.optical.0.bias"]
        h2 = z2 @ t["encoder.sar.0.weight"].T + t["encoder.sar.0.bias"]
        reps = {"raw_optical": z1, "raw_sar": z2, "aligned_optical": h1,
                "aligned_sar": h2, "joint": (h1 + h2) / 2}
        if meta["objective"] == "shared-private":
            # p_m = wx x_m + wh h_m + bias; joint = [mean h | p1 | p2].
            p = []
            for m, z, h in (("optical", z1, h1), ("sar", z2, h2)):
                p.append(z @ t["private.%s.wx" % m].T +
                         h @ t["private.%s.wh" % m].T +
                         t["private.%s.bias" % m])
            reps["joint"] = np.hstack([(h1 + h2) / 2, p[0], p[1]])
            reps["full"] = np.hstack([h1, p[0], h2, p[1]])
        blk = (py * blocks // H) * blocks + px * blocks // W
        if task == "classes":
            values = np.unique(y)
            T = (y[:, None] == values[None, :]).astype(np.float64)
        else:
            T = y[:, None]
        out = {}
        for name, Z in reps.items():
            pred = ridge_cv(Z, T, blk, ridge)
            if task == "classes":
                out[name] = np.mean(pred.argmax(1) == T.argmax(1))
            else:
                out[name] = 1 - np.sum((y - pred[:, 0]) ** 2) / np.sum(
                    (y - y.mean()) ** 2)
        return out, len(y), len(np.unique(blk))

    def check(self, model, labels, band, task, blocks, ridge):
        p = run("probe", "-q", "--json", "--samples", "0", "--task", task,
                "--blocks", blocks, "--ridge", ridge, "--label-band", band,
                model, self.opt, self.sar, labels)
        got = json.loads(p.stdout)
        ref, n, folds = self.reference(model, labels, band, task, blocks,
                                       ridge)
        self.assertEqual(got["samples"], n)
        self.assertEqual(got["folds"], folds)
        key = "accuracy" if task == "classes" else "r2"
        self.assertEqual(set(got["representations"]), set(ref))
        for name, value in ref.items():
            mine = got["representations"][name][key]
            print("%-16s %-10s %-16s mmcl %.6f  numpy %.6f" %
                  (os.path.basename(model), task, name, mine, value))
            self.assertAlmostEqual(mine, value, delta=TOL)
        for m in ("optical", "sar"):
            g = (got["representations"]["aligned_" + m][key] -
                 got["representations"]["raw_" + m][key])
            self.assertAlmostEqual(got["gap"][m], -g, delta=1e-9)
        return got

    def test_classes_match_numpy(self):
        got = self.check(self.models["cca"],
                         os.path.join(SAMPLE, "labels.tif"), 1, "classes", 4,
                         1e-3)
        self.assertEqual(got["classes"], [0, 1, 2, 3, 4])

    def test_regression_matches_numpy(self):
        truth = os.path.join(SAMPLE, "truth.tif")
        ds = gdal.Open(truth)
        names = [ds.GetRasterBand(b).GetDescription()
                 for b in range(1, ds.RasterCount + 1)]
        for target in ("shared_0", "optical_specific_0"):
            got = self.check(self.models["cca"], truth,
                             names.index(target) + 1, "regression", 5, 0.01)
            if target == "optical_specific_0":
                # Alignment loses the optical-specific factor.
                self.assertGreater(got["gap"]["optical"], 0.5)

    def test_shared_private_matches_numpy(self):
        got = self.check(self.models["shared-private"],
                         os.path.join(SAMPLE, "labels.tif"), 1, "classes", 3,
                         1e-3)
        self.assertIn("full", got["representations"])

    def test_table_and_bad_input(self):
        labels = os.path.join(SAMPLE, "labels.tif")
        p = run("probe", "-q", self.models["cca"], self.opt, self.sar, labels)
        self.assertIn("representation", p.stdout)
        self.assertIn("aligned_optical", p.stdout)
        self.assertIn("sigma-informativeness gap", p.stdout)
        p = run("probe", "-q", self.models["cca"], self.opt, self.sar,
                os.path.join(self.dir, "missing.tif"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("does not exist", p.stderr)
        p = run("probe", "-q", self.models["cca"], self.opt, self.sar,
                check=False)
        self.assertEqual(p.returncode, 2)
        p = run("probe", "-q", "--blocks", "1", self.models["cca"], self.opt,
                self.sar, labels, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--blocks 1 is out of range", p.stderr)
        # A label raster on another grid: warped, with a note.
        moved = os.path.join(self.dir, "labels_utm_20m.tif")
        gdal.Warp(moved, labels, xRes=20, yRes=20, resampleAlg="near")
        p = run("probe", "--json", self.models["cca"], self.opt, self.sar,
                moved)
        self.assertTrue(json.loads(p.stdout)["label_warped"])
        self.assertIn("warped onto the optical grid", p.stderr)


@unittest.skipUnless(os.path.isdir(SPAIN),
                     "real data folder %s is absent" % SPAIN)
class SpainWater(unittest.TestCase):
    """The whole chain on the Sen1Floods11 Spain pair: train, then probe
    the hand-labelled water mask (-1 invalid, no nodata tag)."""

    def test_water_probe_on_the_spain_pair(self):
        tmp = tempfile.mkdtemp(prefix="mmcl-probe-spain-")
        try:
            opt = os.path.join(SPAIN, "Spain_7370579_S2Hand.tif")
            sar = os.path.join(SPAIN, "Spain_7370579_S1Hand.tif")
            lab = os.path.join(SPAIN, "Spain_7370579_LabelHand.tif")
            for obj, extra in (("cca", []), ("pca", []),
                               ("shared-private", ["--private-dim", "2"])):
                model = os.path.join(tmp, obj + ".mmcl")
                run("train", "-q", "--objective", obj, "--dim", "2", *extra,
                    opt, sar, model)
                r = json.loads(run("probe", "-q", "--json", model, opt, sar,
                                   lab).stdout)
                acc = {k: v["accuracy"]
                       for k, v in r["representations"].items()}
                print(obj, " ".join("%s %.4f" % kv for kv in acc.items()))
                self.assertEqual(r["classes"], [0, 1])
                self.assertEqual(r["label_nodata"], -1)
                self.assertFalse(r["label_warped"])
                # Water is easy from either modality: well above the
                # share of the larger class.
                for name in ("raw_optical", "raw_sar", "aligned_optical",
                             "joint"):
                    self.assertGreater(acc[name], r["chance"] + 0.1, name)
                self.assertEqual("full" in acc, obj == "shared-private")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
