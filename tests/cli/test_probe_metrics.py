# SPDX-License-Identifier: MIT
"""`mmcl probe` figures against scikit-learn's metrics on the same
predictions.

The predictions are those of the prediction map (`--map`): with
`--samples 0` every valid labelled pixel is a sample, and the map holds at
each one the held-out prediction the figures count. scikit-learn computes
the figures from the label raster and the map alone, and they must match
the JSON report and the CSV (`--csv`). On the Sen1Floods11 Spain pair's
hand-labelled water mask (-1 invalid) for classes, and on the sample
scene's truth raster for a continuous target.

    MMCL=build/mmcl /usr/bin/python3 tests/cli/test_probe_metrics.py -v
"""
import csv
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
from osgeo import gdal
from sklearn import metrics

from mmcl_cli import SAMPLE, SPAIN, run

gdal.UseExceptions()

TOL = 1e-9


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Figures(unittest.TestCase):
    """What every case checks: the map on the optical grid, and the
    figures of its representation as scikit-learn computes them."""

    def check_grid(self, out, optical):
        o, m = gdal.Open(optical), gdal.Open(out)
        self.assertEqual((m.RasterXSize, m.RasterYSize),
                         (o.RasterXSize, o.RasterYSize))
        self.assertEqual(m.GetGeoTransform(), o.GetGeoTransform())
        self.assertTrue(m.GetSpatialRef().IsSame(o.GetSpatialRef()))
        self.assertEqual(m.RasterCount, 1)
        self.assertEqual(m.GetMetadataItem("PRODUCT", "MMCL"), "probe_map")
        return m

    def assert_close(self, mine, ref, what, tol=TOL):
        self.assertAlmostEqual(float(mine), float(ref), delta=tol, msg=what)


@unittest.skipUnless(os.path.isdir(SPAIN),
                     "real data folder %s is absent" % SPAIN)
class SpainWater(Figures):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mmcl-probe-metrics-")
        cls.opt = os.path.join(SPAIN, "Spain_7370579_S2Hand.tif")
        cls.sar = os.path.join(SPAIN, "Spain_7370579_S1Hand.tif")
        cls.lab = os.path.join(SPAIN, "Spain_7370579_LabelHand.tif")
        cls.model = os.path.join(cls.dir, "cca.mmcl")
        run("train", "-q", "--objective", "cca", "--dim", "8", cls.opt,
            cls.sar, cls.model)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def probe(self, name, *extra):
        out = os.path.join(self.dir, name + ".tif")
        table = os.path.join(self.dir, name + ".csv")
        p = run("probe", "-q", "--json", "--csv", table, "--map", out,
                *extra, self.model, self.opt, self.sar, self.lab)
        return json.loads(p.stdout), out, table

    def test_figures_match_sklearn(self):
        y_all = gdal.Open(self.lab).ReadAsArray().ravel()
        for rep in ("joint", "raw_optical", "aligned_sar"):
            with self.subTest(representation=rep):
                r, out, table = self.probe("all_" + rep, "--samples", "0",
                                           "--map-representation", rep)
                m = self.check_grid(out, self.opt)
                band = m.GetRasterBand(1)
                self.assertEqual(band.DataType, gdal.GDT_Int32)
                self.assertEqual(band.GetNoDataValue(), -1)
                self.assertEqual(m.GetMetadataItem("REPRESENTATION", "MMCL"),
                                 rep)
                pred_all = band.ReadAsArray().ravel()
                # Nodata exactly where the label is invalid (every Spain
                # pixel with a label has a valid patch).
                valid = pred_all != -1
                self.assertEqual(r["valid_labelled_pixels"],
                                 int((y_all != -1).sum()))
                np.testing.assert_array_equal(valid, y_all != -1)
                y, pred = y_all[valid], pred_all[valid]
                self.assertEqual(r["samples"], len(y))
                self.compare(r, rep, y, pred, read_csv(table))

    def compare(self, r, rep, y, pred, rows):
        e = r["representations"][rep]
        classes = [0, 1]
        self.assertEqual(r["classes"], classes)
        sk = {
            "accuracy": metrics.accuracy_score(y, pred),
            "balanced_accuracy": metrics.balanced_accuracy_score(y, pred),
            "macro_precision": metrics.precision_score(
                y, pred, average="macro", zero_division=0),
            "macro_recall": metrics.recall_score(y, pred, average="macro"),
            "macro_f1": metrics.f1_score(y, pred, average="macro"),
            "mean_iou": metrics.jaccard_score(y, pred, average="macro"),
        }
        for k, v in sk.items():
            print("%-12s %-18s mmcl %.6f  sklearn %.6f" % (rep, k, e[k], v))
            self.assert_close(e[k], v, "%s %s" % (rep, k))
        p, rc, f1, support = metrics.precision_recall_fscore_support(
            y, pred, labels=classes, zero_division=0)
        iou = metrics.jaccard_score(y, pred, labels=classes, average=None)
        conf = metrics.confusion_matrix(y, pred, labels=classes)
        self.assertEqual(e["confusion"], conf.tolist())
        for c, pc in enumerate(e["per_class"]):
            self.assertEqual(pc["class"], classes[c])
            self.assertEqual(pc["support"], support[c])
            for k, v in (("precision", p[c]), ("recall", rc[c]),
                         ("f1", f1[c]), ("iou", iou[c])):
                self.assert_close(pc[k], v, "%s class %d %s" % (rep, c, k))
        # The CSV: the same figures, one row per representation and class.
        mine = [row for row in rows if row["representation"] == rep]
        self.assertEqual([int(row["class"]) for row in mine], classes)
        for c, row in enumerate(mine):
            self.assertEqual(int(row["dim"]), e["dim"])
            self.assertEqual(int(row["support"]), support[c])
            for k, v in (("precision", p[c]), ("recall", rc[c]),
                         ("f1", f1[c]), ("iou", iou[c]),
                         ("accuracy", sk["accuracy"]),
                         ("balanced_accuracy", sk["balanced_accuracy"]),
                         ("macro_f1", sk["macro_f1"]),
                         ("mean_iou", sk["mean_iou"])):
                self.assert_close(row[k], v, "CSV %s %s" % (rep, k), 1e-8)
            self.assertEqual([int(row["predicted_%d" % k]) for k in classes],
                             conf[c].tolist())
        # The majority-class baseline: scikit-learn's most_frequent dummy.
        from sklearn.dummy import DummyClassifier
        dummy = DummyClassifier(strategy="most_frequent").fit(
            np.zeros((len(y), 1)), y).predict(np.zeros((len(y), 1)))
        b = r["baseline"]
        self.assertEqual(b["method"], "majority_class")
        self.assertEqual(b["class"], dummy[0])
        for k, v in (("accuracy", metrics.accuracy_score(y, dummy)),
                     ("balanced_accuracy",
                      metrics.balanced_accuracy_score(y, dummy)),
                     ("macro_f1", metrics.f1_score(y, dummy, average="macro",
                                                   zero_division=0)),
                     ("mean_iou", metrics.jaccard_score(
                         y, dummy, average="macro", zero_division=0))):
            self.assert_close(b[k], v, "baseline " + k)
        self.assert_close(r["chance"], b["accuracy"], "chance")
        base = [row for row in rows
                if row["representation"] == "majority_baseline"]
        self.assertEqual(len(base), len(classes))
        # Every representation has a row per class, then the baseline.
        self.assertEqual(len(rows), (len(r["representations"]) + 1) *
                         len(classes))
        # Water is well above the baseline from the optical pixels.
        self.assertGreater(r["representations"]["raw_optical"]["macro_f1"],
                           b["macro_f1"] + 0.3)

    def test_sampled_map_covers_every_valid_pixel(self):
        """With a sample, the map still predicts every valid labelled
        pixel (the others with their block's held-out probe), and its
        accuracy is close to the sample's."""
        r, out, table = self.probe("sampled", "--samples", "20000")
        m = self.check_grid(out, self.opt)
        pred = m.GetRasterBand(1).ReadAsArray().ravel()
        y = gdal.Open(self.lab).ReadAsArray().ravel()
        valid = pred != -1
        np.testing.assert_array_equal(valid, y != -1)
        self.assertEqual(r["samples"], 20000)
        acc = metrics.accuracy_score(y[valid], pred[valid])
        self.assertAlmostEqual(acc, r["representations"]["joint"]["accuracy"],
                               delta=0.01)
        self.assertEqual(m.GetMetadataItem("SAMPLES", "MMCL"), "20000")


class SampleRegression(Figures):
    """A continuous target: the sample scene's shared factor."""

    def test_regression_figures_match_sklearn(self):
        d = tempfile.mkdtemp(prefix="mmcl-probe-metrics-")
        try:
            opt = os.path.join(SAMPLE, "optical.tif")
            sar = os.path.join(SAMPLE, "sar.tif")
            truth = os.path.join(SAMPLE, "truth.tif")
            model = os.path.join(d, "m.mmcl")
            run("train", "-q", "--dim", "2", opt, sar, model)
            ds = gdal.Open(truth)
            names = [ds.GetRasterBand(b).GetDescription()
                     for b in range(1, ds.RasterCount + 1)]
            band = names.index("optical_specific_0") + 1
            out, table = os.path.join(d, "p.tif"), os.path.join(d, "p.csv")
            r = json.loads(run(
                "probe", "-q", "--json", "--task", "regression", "--samples",
                "0", "--label-band", str(band), "--map", out, "--csv", table,
                "--map-representation", "aligned_optical", model, opt, sar,
                truth).stdout)
            m = self.check_grid(out, opt)
            self.assertEqual(m.GetRasterBand(1).DataType, gdal.GDT_Float32)
            pred = m.GetRasterBand(1).ReadAsArray().ravel().astype(float)
            y = ds.GetRasterBand(band).ReadAsArray().ravel().astype(float)
            valid = np.isfinite(pred)
            self.assertEqual(int(valid.sum()), r["samples"])
            y, pred = y[valid], pred[valid]
            e = r["representations"]["aligned_optical"]
            # The map holds float32: figures agree to its rounding.
            for k, v in (("r2", metrics.r2_score(y, pred)),
                         ("rmse", np.sqrt(metrics.mean_squared_error(y,
                                                                     pred))),
                         ("mae", metrics.mean_absolute_error(y, pred))):
                print("regression %-5s mmcl %.8f  sklearn %.8f" %
                      (k, e[k], v))
                self.assert_close(e[k], v, k, 1e-5)
            b = r["baseline"]
            mean = np.full_like(y, y.mean())
            self.assert_close(b["r2"], 0.0, "baseline r2")
            self.assert_close(b["rmse"], np.sqrt(
                metrics.mean_squared_error(y, mean)), "baseline rmse", 1e-6)
            self.assert_close(b["mae"], metrics.mean_absolute_error(y, mean),
                              "baseline mae", 1e-6)
            rows = read_csv(table)
            self.assertEqual(list(rows[0]), ["representation", "dim",
                                             "samples", "r2", "rmse", "mae"])
            self.assertEqual([row["representation"] for row in rows],
                             list(r["representations"]) + ["mean_baseline"])
            row = rows[list(r["representations"]).index("aligned_optical")]
            for k in ("r2", "rmse", "mae"):
                self.assert_close(row[k], e[k], "CSV " + k, 1e-8)
            # Alignment loses the optical-specific factor; the raw pixels
            # keep it.
            self.assertGreater(r["representations"]["raw_optical"]["r2"],
                               e["r2"] + 0.3)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
