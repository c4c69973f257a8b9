# SPDX-License-Identifier: MIT
"""`mmcl train`, `mmcl info` and `mmcl synth` as a user runs them: on
sample_data/, on a synthetic scene, on the real Spain pair, and the model
file read back by an independent reader (json + NumPy, from the published
safetensors layout).

    MMCL=build/mmcl python3 tests/cli/test_train_cli.py -v
"""
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
from osgeo import gdal

from mmcl_cli import (SAMPLE, SPAIN, Workdir, need_data, read_safetensors,
                      run)

gdal.UseExceptions()


class Train(Workdir):
    def test_every_objective_on_sample_data_and_info_reads_it(self):
        opt = os.path.join(SAMPLE, "optical.tif")
        sar = os.path.join(SAMPLE, "sar.tif")
        for obj, extra in (("cca", []), ("pca", []),
                           ("shared-private", ["--private-dim", "2"]),
                           ("clip", ["--encoder", "mlp:32,32", "--epochs", "3",
                                     "--batch", "256", "--temperature",
                                     "learned"])):
            model = self.path(obj + ".mmcl")
            p = run("train", "--json", "-q", "--objective", obj, "--dim", "2",
                    "--patch", "3", "--samples", "8000", *extra, opt, sar,
                    model)
            figures = json.loads(p.stdout)
            r2 = figures["sample_r2"]
            print("%-15s optical R2 aligned %.3f / PCA %.3f, sar %.3f / %.3f"
                  % (obj, r2["optical"]["aligned"], r2["optical"]["unimodal"],
                     r2["sar"]["aligned"], r2["sar"]["unimodal"]))
            for m in ("optical", "sar"):
                self.assertTrue(0 <= r2[m]["aligned"] <= 1.000001)
            info = json.loads(run("info", "--json", model).stdout)
            self.assertEqual(info["metadata"]["objective"], obj)
            meta, tensors = read_safetensors(model)
            self.assertEqual(meta, info["metadata"])
            shapes = {t["name"]: t["shape"] for t in info["tensors"]}
            self.assertEqual(shapes, {k: list(v.shape)
                                      for k, v in tensors.items()})
            for name, v in tensors.items():
                self.assertTrue(np.all(np.isfinite(v)), name)
            text = run("info", model).stdout
            self.assertIn("Objective: " + obj, text)
            if obj == "clip":
                self.assertEqual(len(figures["loss_curve"]), 3)
                self.assertIn("clip.log_tau", tensors)
            if obj == "cca":
                rho = figures["canonical_correlations"]
                self.assertGreater(rho[1], 0.9)

    def test_model_does_not_depend_on_tile_or_threads(self):
        """The sample is drawn on a fixed lattice of tiles, whatever --tile:
        the same seed gives the same tensors and figures at any --tile and
        --threads (the metadata differs only in the options recorded)."""
        opt = os.path.join(SAMPLE, "optical.tif")
        sar = os.path.join(SAMPLE, "sar.tif")
        models = []
        for tile, threads in (("64", "1"), ("256", "2"), ("100", "2")):
            model = self.path("m%s.mmcl" % tile)
            run("train", "-q", "--objective", "cca", "--dim", "2", "--patch",
                "3", "--samples", "6000", "--tile", tile, "--threads",
                threads, opt, sar, model)
            models.append(read_safetensors(model))
        meta0, t0 = models[0]
        for meta, t in models[1:]:
            self.assertEqual(sorted(t), sorted(t0))
            for name in t0:
                self.assertEqual(t[name].tobytes(), t0[name].tobytes(), name)
            self.assertEqual(meta["figures"], meta0["figures"])

    def test_cca_encoder_reproduces_canonical_variates_in_numpy(self):
        # The stored linear encoder, applied in NumPy to patch vectors built
        # here from the rasters, gives variates whose correlation is the
        # reported canonical correlation.
        opt = os.path.join(SAMPLE, "optical.tif")
        model = self.path("cca1.mmcl")
        aligned = self.path("sar_on_grid.tif")
        run("align", "-q", opt, os.path.join(SAMPLE, "sar.tif"), aligned)
        # Without --samples every valid pixel (fewer than 100000) is used,
        # and without ridge the variates are plain CCA's: NumPy on the same
        # pixels must find the same correlations.
        p = run("train", "--json", "-q", "--objective", "cca", "--dim", "2",
                "--patch", "1", "--ridge", "0", opt, aligned, model)
        rho = json.loads(p.stdout)["canonical_correlations"]
        meta, t = read_safetensors(model)
        x1 = gdal.Open(opt).ReadAsArray().reshape(8, -1).T.astype(np.float64)
        x2 = gdal.Open(aligned).ReadAsArray().reshape(4, -1).T.astype(
            np.float64)
        ok = np.all(np.isfinite(x1), 1) & np.all(np.isfinite(x2), 1)
        x1, x2 = x1[ok], x2[ok]
        z1 = (x1 - meta["optical"]["mean"]) / meta["optical"]["std"]
        z2 = (x2 - meta["sar"]["mean"]) / meta["sar"]["std"]
        h1 = z1 @ t["encoder.optical.0.weight"].T + t["encoder.optical.0.bias"]
        h2 = z2 @ t["encoder.sar.0.weight"].T + t["encoder.sar.0.bias"]
        for j in range(2):
            r = np.corrcoef(h1[:, j], h2[:, j])[0, 1]
            print("variate %d: numpy r = %.6f, reported %.6f" % (j, r, rho[j]))
            self.assertAlmostEqual(r, rho[j], delta=1e-4)

    def test_bad_input_exits_non_zero(self):
        opt = os.path.join(SAMPLE, "optical.tif")
        sar = os.path.join(SAMPLE, "sar.tif")
        model = self.path("m.mmcl")
        p = run("train", "-q", "--dim", "99", opt, sar, model, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("larger than what a modality can give", p.stderr)
        p = run("train", "-q", "--objective", "nope", opt, sar, model,
                check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("must be one of", p.stderr)
        self.assertFalse(os.path.exists(model))
        with open(model, "w") as f:
            f.write("keep")
        p = run("train", "-q", opt, sar, model, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--overwrite", p.stderr)
        with open(model) as f:
            self.assertEqual(f.read(), "keep")
        with open(self.path("broken.mmcl"), "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
        p = run("info", self.path("broken.mmcl"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("broken.mmcl", p.stderr)

    def test_real_spain_pair_trains(self):
        need_data(SPAIN)
        opt = os.path.join(SPAIN, "Spain_7370579_S2Hand.tif")
        sar = os.path.join(SPAIN, "derived",
                           "Spain_7370579_S1Hand_EPSG32630_20m.tif")
        model = self.path("spain.mmcl")
        p = run("train", "--json", "-q", "--objective", "cca", "--dim", "8",
                "--patch", "3", "--samples", "50000", opt, sar, model)
        f = json.loads(p.stdout)
        print("Spain cca: rho %s; optical R2 aligned %.3f vs PCA_8 %.3f" %
              (", ".join("%.2f" % r for r in f["canonical_correlations"][:8]),
               f["sample_r2"]["optical"]["aligned"],
               f["sample_r2"]["optical"]["unimodal"]))
        self.assertEqual(len(f["canonical_correlations"]), 18)
        self.assertGreater(f["canonical_correlations"][0], 0.5)
        meta = json.loads(run("info", "--json", model).stdout)["metadata"]
        self.assertEqual(meta["optical"]["band_names"][:3],
                         ["B1", "B2", "B3"])
        self.assertEqual(meta["sar"]["band_names"], ["VV", "VH"])


class Synth(unittest.TestCase):
    def test_same_seed_same_files_and_sar_on_requested_grid(self):
        d = tempfile.mkdtemp(prefix="mmcl-synth-")
        try:
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            for out in (a, b):
                run("synth", "-q", out, "--preset", "specific", "--size",
                    "96", "--seed", "7", "--sar-srs", "EPSG:4326",
                    "--sar-res", "0.0002")
            for f in ("optical.tif", "sar.tif", "labels.tif", "truth.tif",
                      "synth.json"):
                with open(os.path.join(a, f), "rb") as fa, \
                        open(os.path.join(b, f), "rb") as fb:
                    self.assertEqual(fa.read(), fb.read(), f)
            s = gdal.Open(os.path.join(a, "sar.tif"))
            self.assertEqual(s.GetSpatialRef().GetAuthorityCode(None), "4326")
            self.assertAlmostEqual(s.GetGeoTransform()[1], 0.0002, places=12)
            p = run("synth", "-q", a, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("exists", p.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_sample_data_is_what_its_readme_says(self):
        # sample_data/README.md gives the command; running it again gives
        # the same pixels, within float32 rounding: the committed files were
        # made on another CPU, whose BLAS kernel sums the scene's float32
        # products (a few latent factors deep) in another order, which moves
        # a value of order 0.01-1 by a few units in the last place (6e-8 seen
        # between OpenBLAS's Cooperlake and Prescott kernels). atol 1e-6 is
        # about 30 ulp at 0.25; integer rasters and the NaN holes are exact.
        d = tempfile.mkdtemp(prefix="mmcl-sample-")
        try:
            run("synth", "-q", d, "--preset", "specific", "--size", "192",
                "--seed", "42", "--sar-srs", "EPSG:4326", "--sar-res",
                "0.0002", "--sar-holes", "3", "--overwrite")
            for f in ("optical.tif", "sar.tif", "labels.tif", "truth.tif"):
                a = gdal.Open(os.path.join(d, f)).ReadAsArray()
                b = gdal.Open(os.path.join(SAMPLE, f)).ReadAsArray()
                if a.dtype.kind in "iu":
                    np.testing.assert_array_equal(a, b, err_msg=f)
                    continue
                np.testing.assert_array_equal(np.isnan(a), np.isnan(b),
                                              err_msg=f + ": NaN holes")
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6,
                                           err_msg=f)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
