# SPDX-License-Identifier: MIT
"""`mmcl probe --embedding`: embedding rasters probed beside the model's
representations, on the same samples and spatial blocks.

On an `mmcl synth` scene (5 classes; the shared factors carry per-class
offsets):
- the true class one-hot scores 1; a raster of the scene's latent factors
  scores above the majority class and 0.2 of accuracy above seeded noise
  bands, which score no better than the majority class (spatial blocks
  leave noise nothing to overfit); on the optical-specific factor as a
  continuous target the latent raster reaches R2 > 0.99 where the noise
  and the CCA model's joint embedding stay near 0;
- the map of `mmcl embed` (the joint embedding) given as --embedding scores
  what the model's own joint representation scores: the same samples, the
  same confusion matrix, the figures within 1e-9 (the same float values
  through the same probe);
- a copy of it warped to EPSG:4326 and quantized to int8 as Google's
  Satellite Embedding COGs (sign(x) sqrt(|x|) * 127.5, nodata -128; signed
  bytes, as GDAL 3.6 writes them) is de-quantized as alphaearth on its own
  and scores within 0.01 of the float copy on the same grid (the
  quantization error), and within 0.01 of R2 of the original on the shared
  factor;
- the figures of an embedding representation match scikit-learn's metrics
  on its prediction map (--map, --samples 0) to 1e-9, and the CSV's rows;
  for a continuous target to the map's float32 rounding (1e-5).

    MMCL=build/mmcl /usr/bin/python3 tests/cli/test_probe_embedding.py -v
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

from mmcl_cli import run

gdal.UseExceptions()

SIZE = 160


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_like(path, ref, bands, names=None, nodata=None,
               dtype=gdal.GDT_Float32):
    """A GeoTIFF on the grid of the raster @p ref holding @p bands
    (k, h, w)."""
    src = gdal.Open(ref)
    ds = gdal.GetDriverByName("GTiff").Create(
        path, src.RasterXSize, src.RasterYSize, len(bands), dtype)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for i, b in enumerate(bands):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(b)
        if names:
            band.SetDescription(names[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = None


def quantize_alphaearth(x):
    """int8 codes of the Satellite Embedding dataset: the signed square
    root of x in [-1, 1] times 127.5, rounded and clipped to [-127, 127];
    -128 where x is NaN."""
    q = np.sign(x) * np.sqrt(np.abs(x)) * 127.5
    q = np.clip(np.rint(np.nan_to_num(q)), -127, 127).astype(np.int8)
    q[~np.isfinite(x)] = -128
    return q


class ProbeEmbedding(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mmcl-probe-emb-")
        d = cls.dir
        cls.scene = os.path.join(d, "scene")
        run("synth", "-q", "--size", str(SIZE), "--seed", "7", cls.scene)
        cls.opt = os.path.join(cls.scene, "optical.tif")
        cls.sar = os.path.join(cls.scene, "sar.tif")
        cls.lab = os.path.join(cls.scene, "labels.tif")
        cls.truth = os.path.join(cls.scene, "truth.tif")
        cls.model = os.path.join(d, "cca.mmcl")
        run("train", "-q", "--objective", "cca", "--dim", "4", "--patch",
            "3", "--samples", "8000", cls.opt, cls.sar, cls.model)
        cls.emb = os.path.join(d, "emb.tif")
        run("embed", "-q", cls.model, cls.opt, cls.sar, cls.emb)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def probe(self, *extra, labels=None):
        p = run("probe", "-q", "--json", "--blocks", "4", *extra,
                self.model, self.opt, self.sar, labels or self.lab)
        return json.loads(p.stdout)

    def truth_band(self, name):
        ds = gdal.Open(self.truth)
        names = [ds.GetRasterBand(b).GetDescription()
                 for b in range(1, ds.RasterCount + 1)]
        return names.index(name) + 1

    def truth_factors(self):
        """The latent factors (every truth band but the energies)."""
        ds = gdal.Open(self.truth)
        bands, names = [], []
        for b in range(1, ds.RasterCount + 1):
            name = ds.GetRasterBand(b).GetDescription()
            if not name.endswith("_energy"):
                bands.append(ds.GetRasterBand(b).ReadAsArray())
                names.append(name)
        return np.array(bands), names

    def test_latent_factors_score_far_above_noise(self):
        z, names = self.truth_factors()
        latent = self.path("latent.tif")
        write_like(latent, self.opt, z, names)
        rng = np.random.default_rng(11)
        noise = self.path("noise.tif")
        write_like(noise, self.opt,
                   rng.standard_normal(z.shape).astype(np.float32))
        y = gdal.Open(self.lab).ReadAsArray()
        classes = np.unique(y[y != 255])
        onehot = self.path("onehot.tif")
        write_like(onehot, self.opt,
                   [(y == c).astype(np.float32) for c in classes])
        r = self.probe("--embedding", latent, "--embedding", noise,
                       "--embedding", "truth_class=" + onehot)
        reps = r["representations"]
        for name in ("latent", "noise", "truth_class"):
            print("%-12s dim %2d accuracy %.4f macro F1 %.4f" % (
                name, reps[name]["dim"], reps[name]["accuracy"],
                reps[name]["macro_f1"]))
        print("chance %.4f" % r["chance"])
        self.assertEqual(reps["latent"]["dim"], len(names))
        self.assertEqual(reps["noise"]["dim"], len(names))
        self.assertEqual(reps["truth_class"]["dim"], len(classes))
        # The class one-hot is the answer itself.
        self.assertEqual(reps["truth_class"]["accuracy"], 1.0)
        # Noise bands are no better than the majority class (worse: a
        # held-out block's classes are rarer in the other blocks).
        self.assertLess(reps["noise"]["accuracy"], r["chance"] + 0.02)
        self.assertLess(reps["noise"]["balanced_accuracy"],
                        1.0 / len(classes) + 0.02)
        # The latent factors carry the class offsets (blended, on smooth
        # fields: a linear probe of 5 classes on them stays weak).
        self.assertGreater(reps["latent"]["accuracy"], r["chance"])
        self.assertGreater(reps["latent"]["accuracy"],
                           reps["noise"]["accuracy"] + 0.2)
        self.assertGreater(reps["latent"]["balanced_accuracy"],
                           reps["noise"]["balanced_accuracy"] + 0.1)
        # A target the latent raster holds and the model drops: the
        # optical-specific factor (CCA aligns the shared part only).
        rr = self.probe("--task", "regression", "--label-band",
                        str(self.truth_band("optical_specific_0")),
                        "--embedding", latent, "--embedding", noise,
                        labels=self.truth)["representations"]
        print("optical_specific_0: R2 latent %.4f, noise %.4f, joint %.4f" %
              (rr["latent"]["r2"], rr["noise"]["r2"], rr["joint"]["r2"]))
        self.assertGreater(rr["latent"]["r2"], 0.99)
        self.assertLess(rr["noise"]["r2"], 0.02)
        self.assertLess(rr["joint"]["r2"], 0.5)
        e = r["embeddings"]["latent"]
        self.assertEqual(e["file"], latent)
        self.assertEqual(e["band_names"], names)
        self.assertEqual(e["bands"], list(range(1, len(names) + 1)))
        self.assertEqual(e["dequantize"], "none")
        self.assertFalse(e["warped"])

    def assert_same_figures(self, a, b, tol, what):
        for k in ("accuracy", "balanced_accuracy", "macro_precision",
                  "macro_recall", "macro_f1", "mean_iou"):
            self.assertAlmostEqual(a[k], b[k], delta=tol,
                                   msg="%s: %s" % (what, k))

    def test_embed_output_scores_as_the_joint_representation(self):
        base = self.probe()
        r = self.probe("--embedding", self.emb)
        # The map is valid exactly where both patches are: the same
        # samples as without it.
        self.assertEqual(r["samples"], base["samples"])
        self.assertEqual(r["valid_labelled_pixels"],
                         base["valid_labelled_pixels"])
        joint, emb = r["representations"]["joint"], r["representations"]["emb"]
        self.assertEqual(emb["dim"], joint["dim"])
        print("joint accuracy %.6f, emb.tif accuracy %.6f" % (
            joint["accuracy"], emb["accuracy"]))
        self.assertEqual(emb["confusion"], joint["confusion"])
        self.assert_same_figures(emb, joint, 1e-9, "emb.tif vs joint")
        # And the model's representations are unchanged by it.
        self.assertEqual(r["representations"]["joint"]["confusion"],
                         base["representations"]["joint"]["confusion"])

    def test_embed_output_scores_as_joint_for_a_continuous_target(self):
        ds = gdal.Open(self.truth)
        names = [ds.GetRasterBand(b).GetDescription()
                 for b in range(1, ds.RasterCount + 1)]
        band = names.index("shared_0") + 1
        r = self.probe("--task", "regression", "--label-band", str(band),
                       "--embedding", "e=" + self.emb, labels=self.truth)
        joint, emb = r["representations"]["joint"], r["representations"]["e"]
        print("R2 joint %.8f, emb.tif %.8f" % (joint["r2"], emb["r2"]))
        for k in ("r2", "rmse", "mae"):
            self.assertAlmostEqual(emb[k], joint[k], delta=1e-9, msg=k)

    def warp_4326(self, src, dst):
        """@p src warped to EPSG:4326 (bilinear) at half the pixel size GDAL
        would choose, so that the way there and back blurs little."""
        vrt = gdal.Warp("", src, format="VRT", dstSRS="EPSG:4326")
        gt = vrt.GetGeoTransform()
        vrt = None
        # Written when the returned dataset goes (at once).
        gdal.Warp(dst, src, dstSRS="EPSG:4326", resampleAlg="bilinear",
                  xRes=gt[1] / 2, yRes=-gt[5] / 2,
                  dstNodata=float("nan"), outputType=gdal.GDT_Float32)

    def test_int8_epsg4326_copy_scores_as_the_float_original(self):
        f4326 = self.path("emb_4326.tif")
        self.warp_4326(self.emb, f4326)
        ds = gdal.Open(f4326)
        x = ds.ReadAsArray().astype(np.float64)
        # Into [-1, 1] as the product's unit vectors are: one global scale
        # (the probe standardizes each feature, so a scale changes nothing).
        x /= np.nanmax(np.abs(x))
        q = quantize_alphaearth(x)
        # GDAL 3.6 has no Int8 type: signed bytes are Byte bands with
        # PIXELTYPE=SIGNEDBYTE, as GDAL 3.6 reads the product's COGs.
        tmp = self.path("emb_4326_int8_tmp.tif")
        out = gdal.GetDriverByName("GTiff").Create(
            tmp, ds.RasterXSize, ds.RasterYSize, ds.RasterCount,
            gdal.GDT_Byte, options=["PIXELTYPE=SIGNEDBYTE"])
        out.SetGeoTransform(ds.GetGeoTransform())
        out.SetProjection(ds.GetProjection())
        for b in range(ds.RasterCount):
            band = out.GetRasterBand(b + 1)
            band.WriteArray(q[b].view(np.uint8))
            band.SetNoDataValue(-128)
            band.SetDescription("A%02d" % b)
        out = None
        q8 = self.path("emb_4326_int8.tif")
        gdal.Translate(q8, tmp, format="COG")  # written when it goes
        qds = gdal.Open(q8)
        band = qds.GetRasterBand(1)
        self.assertEqual(band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE"),
                         "SIGNEDBYTE")
        np.testing.assert_array_equal(band.ReadAsArray(), q[0])
        r = self.probe("--embedding", "q=" + q8, "--embedding", "f=" + f4326,
                       "--embedding", "orig=" + self.emb)
        reps = r["representations"]
        for name in ("q", "f", "orig", "joint"):
            print("%-5s accuracy %.4f macro F1 %.4f" % (
                name, reps[name]["accuracy"], reps[name]["macro_f1"]))
        e = r["embeddings"]["q"]
        self.assertEqual(e["dequantize"], "alphaearth")
        self.assertTrue(e["warped"])
        self.assertTrue(r["embeddings"]["f"]["warped"])
        self.assertEqual(r["embeddings"]["f"]["dequantize"], "none")
        # The quantization alone (the same grid): within 0.01.
        for k in ("accuracy", "balanced_accuracy", "macro_f1", "mean_iou"):
            self.assertAlmostEqual(reps["q"][k], reps["f"][k], delta=0.01,
                                   msg="int8 vs float EPSG:4326: " + k)
        # And against the original, a continuous target that the embedding
        # holds (R2 near 1), where the two warps' smoothing weighs little:
        # the shared factor, within 0.01 of R2.
        rr = self.probe("--task", "regression", "--label-band",
                        str(self.truth_band("shared_0")),
                        "--embedding", "q=" + q8, "--embedding",
                        "orig=" + self.emb, labels=self.truth)
        rq, ro = rr["representations"]["q"], rr["representations"]["orig"]
        print("shared_0: R2 int8 EPSG:4326 %.5f, original %.5f" % (
            rq["r2"], ro["r2"]))
        self.assertAlmostEqual(rq["r2"], ro["r2"], delta=0.01)
        # The de-quantization may be forced: the codes as they are.
        r2 = self.probe("--dequantize", "none", "--embedding", "q=" + q8)
        print("codes as they are: accuracy %.4f" %
              r2["representations"]["q"]["accuracy"])
        self.assertEqual(r2["embeddings"]["q"]["dequantize"], "none")

    def test_embedding_bands_choose_the_representation(self):
        z, names = self.truth_factors()
        latent = self.path("latent_b.tif")
        write_like(latent, self.opt, z, names)
        r = self.probe("--embedding-bands", "1,shared_1",
                       "--embedding", latent)
        e = r["embeddings"]["latent_b"]
        self.assertEqual(e["bands"], [1, names.index("shared_1") + 1])
        self.assertEqual(r["representations"]["latent_b"]["dim"], 2)

    def test_figures_match_sklearn(self):
        out, table = self.path("map.tif"), self.path("map.csv")
        r = self.probe("--samples", "0", "--embedding", self.emb, "--map",
                       out, "--csv", table, "--map-representation", "emb")
        m = gdal.Open(out)
        self.assertEqual(m.GetMetadataItem("REPRESENTATION", "MMCL"), "emb")
        self.assertEqual(m.GetMetadataItem("EMBEDDING", "MMCL"), self.emb)
        self.assertEqual(r["outputs"]["map_representation"], "emb")
        pred_all = m.GetRasterBand(1).ReadAsArray().ravel()
        y_all = gdal.Open(self.lab).ReadAsArray().ravel()
        valid = pred_all != -1
        self.assertEqual(int(valid.sum()), r["samples"])
        y, pred = y_all[valid], pred_all[valid]
        e = r["representations"]["emb"]
        classes = r["classes"]
        sk = {
            "accuracy": metrics.accuracy_score(y, pred),
            "balanced_accuracy": metrics.balanced_accuracy_score(y, pred),
            "macro_precision": metrics.precision_score(
                y, pred, labels=classes, average="macro", zero_division=0),
            "macro_recall": metrics.recall_score(
                y, pred, labels=classes, average="macro", zero_division=0),
            "macro_f1": metrics.f1_score(y, pred, labels=classes,
                                         average="macro", zero_division=0),
            "mean_iou": metrics.jaccard_score(
                y, pred, labels=classes, average="macro", zero_division=0),
        }
        for k, v in sk.items():
            print("emb %-18s mmcl %.6f  sklearn %.6f" % (k, e[k], v))
            self.assertAlmostEqual(e[k], v, delta=1e-9, msg=k)
        conf = metrics.confusion_matrix(y, pred, labels=classes)
        self.assertEqual(e["confusion"], conf.tolist())
        rows = [row for row in read_csv(table)
                if row["representation"] == "emb"]
        self.assertEqual([float(row["class"]) for row in rows], classes)
        for c, row in enumerate(rows):
            self.assertEqual(int(row["dim"]), e["dim"])
            self.assertAlmostEqual(float(row["macro_f1"]), sk["macro_f1"],
                                   delta=1e-8)
            self.assertEqual([int(float(row["predicted_%g" % k]))
                              for k in classes], conf[c].tolist())

    def test_regression_figures_match_sklearn(self):
        ds = gdal.Open(self.truth)
        names = [ds.GetRasterBand(b).GetDescription()
                 for b in range(1, ds.RasterCount + 1)]
        band = names.index("optical_specific_0") + 1
        out = self.path("reg.tif")
        r = self.probe("--task", "regression", "--samples", "0",
                       "--label-band", str(band), "--embedding",
                       "e=" + self.emb, "--map", out,
                       "--map-representation", "e", labels=self.truth)
        m = gdal.Open(out)
        pred = m.GetRasterBand(1).ReadAsArray().ravel()
        y = ds.GetRasterBand(band).ReadAsArray().ravel().astype(float)
        valid = np.isfinite(pred)
        self.assertEqual(int(valid.sum()), r["samples"])
        y, pred = y[valid], pred[valid].astype(float)
        e = r["representations"]["e"]
        # The map holds float32: figures agree to its rounding.
        for k, v in (("r2", metrics.r2_score(y, pred)),
                     ("rmse", np.sqrt(metrics.mean_squared_error(y, pred))),
                     ("mae", metrics.mean_absolute_error(y, pred))):
            print("regression %-5s mmcl %.8f  sklearn %.8f" % (k, e[k], v))
            self.assertAlmostEqual(e[k], v, delta=1e-5, msg=k)


if __name__ == "__main__":
    unittest.main()
