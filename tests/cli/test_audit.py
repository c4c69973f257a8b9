# SPDX-License-Identifier: MIT
"""`mmcl audit` (docs/audit.md) against what the scenes were made with:

- an "embedding" of the optical bands' top-4 PCA components (the optical
  signal of a scene with 2 shared and 2 optical-specific factors) keeps
  all of the optical signal (mean structured loss within 0.05 of 0) and
  loses the SAR-specific region (Spearman >= 0.7 of the SAR structured
  loss with the true SAR-specific energy inside the regions, and a mean
  loss there at least 10 times the mean outside);
- an embedding of every latent factor (truth.tif) loses nothing: mean
  infoloss within 0.05 of 0, structured loss within 0.05 of 0;
- an embedding of the shared factors only gives the maps of a cca model
  of 2 dimensions (Spearman >= 0.85 between the two structured_loss bands
  of each modality, means of infoloss within 0.05; not closer: the cca
  embedding is each modality's noisy estimate of the shared factors, the
  truth is exact) and both locate the specific regions (Spearman >= 0.7
  inside them);
- a product-like input: an mmcl embedding projected to 64 unit-length
  dimensions, put in EPSG:4326 and quantized as the Satellite Embedding
  dataset is (int8 codes sign(v) sqrt(|v|) 127.5, -128 masked, bands
  A00..A63, tiled with overviews), audits as the same raster in float does: the
  de-quantization is recognized, the masked pixels are NaN, and the maps
  differ by at most the quantization error (mean |difference| of the
  infoloss bands <= 0.005, cross-validated R2 within 0.005);
- consistency: the embedding map of a cca model (patch 1) of one
  modality, audited, gives that modality's bands of `mmcl infoloss` of
  the model: infoloss, unimodal and excess within 0.01 on average (the
  decoders differ only by their ridge penalty, chosen by cross-validation
  here, fixed at training there) and Spearman >= 0.99.
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

import numpy as np
from osgeo import gdal, osr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmcl_cli import bands, run, spearman, specific_figures  # noqa: E402

gdal.UseExceptions()


def stack(path):
    ds = gdal.Open(path)
    return ds.ReadAsArray().astype(np.float64).reshape(
        ds.RasterCount, ds.RasterYSize, ds.RasterXSize)


def write_like(path, ref, arrays, names=None, dtype=gdal.GDT_Float32,
               nodata=None):
    """A GeoTIFF of @p arrays (k, h, w) on the grid of raster @p ref."""
    r = gdal.Open(ref)
    k, h, w = arrays.shape
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, k, dtype,
                                              ["TILED=YES"])
    ds.SetGeoTransform(r.GetGeoTransform())
    ds.SetProjection(r.GetProjection())
    for b in range(k):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(arrays[b])
        if names:
            band.SetDescription(names[b])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = None


class Scene:
    """A synthetic scene, made once per class."""

    def __init__(self, work):
        self.dir = os.path.join(work, "scene")
        run("synth", self.dir, "-q", "--size", "256", "--seed", "5")
        self.optical = self.file("optical.tif")
        self.sar = self.file("sar.tif")
        self.truth = bands(self.file("truth.tif"))

    def file(self, name):
        return os.path.join(self.dir, name)

    def model_maps(self, name, dim):
        """A cca model of @p dim dimensions on 1 x 1 patches and its
        information-loss map (bands)."""
        model = self.file(name + ".mmcl")
        run("train", "-q", self.optical, self.sar, model, "--dim", str(dim),
            "--patch", "1")
        loss = self.file(name + "_loss.tif")
        run("infoloss", "-q", model, self.optical, self.sar, loss)
        return model, bands(loss)

    def audit(self, name, embedding, *args):
        out = self.file("audit_%s.tif" % name)
        run("audit", "-q", embedding, self.optical, self.sar, out,
            "--report", out + ".json", *args)
        with open(out + ".json") as f:
            return bands(out), json.load(f)


class Audit(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="mmcl-audit-")
        cls.scene = Scene(cls.work)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def specific(self, b, mod):
        """Spearman of the structured loss with the true specific energy
        inside the regions, and the mean loss inside and outside."""
        return specific_figures(b, self.scene.truth, mod)

    def test_optical_pca_embedding_loses_the_sar_specific_region(self):
        s = self.scene
        x = stack(s.optical)
        k, h, w = x.shape
        flat = x.reshape(k, -1)
        z = (flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)
        val, vec = np.linalg.eigh(np.cov(z))
        pcs = (vec[:, ::-1][:, :4].T @ z).reshape(4, h, w)
        emb = s.file("optical_pca.tif")
        write_like(emb, s.optical, pcs)
        b, rep = s.audit("optical_pca", emb)
        rho, inside, outside = self.specific(b, "sar")
        print("  SAR: Spearman %.3f, structured loss inside %.3f, outside "
              "%.3f" % (rho, inside, outside))
        self.assertGreaterEqual(rho, 0.7)
        self.assertGreater(inside, 10 * max(outside, 1e-3))
        opt = b["structured_loss_optical"]
        print("  optical: mean structured loss %.4f, mean infoloss %.4f" %
              (np.nanmean(opt), np.nanmean(b["infoloss_optical"])))
        self.assertLess(abs(np.nanmean(opt)), 0.05)
        energy = s.truth["optical_specific_energy"]
        self.assertLess(abs(np.nanmean(opt[energy > 0])), 0.05)
        cv = rep["optical"]["cross_validated"]
        self.assertGreater(cv["r2_aligned"], 0.95)
        self.assertEqual(rep["k"], 4)
        self.assertEqual(rep["embedding"]["dequantize"], "none")
        self.assertTrue(rep["embedding"]["on_grid"])

    def test_every_latent_factor_shows_no_loss(self):
        s = self.scene
        b, rep = s.audit("latents", s.file("truth.tif"),
                         "--embedding-bands", "1-5")
        for mod in ("optical", "sar"):
            loss = np.nanmean(b["infoloss_" + mod])
            structured = np.nanmean(b["structured_loss_" + mod])
            print("  %s: mean infoloss %.4f, structured %.4f, loss "
                  "fraction (CV) %.4f" %
                  (mod, loss, structured,
                   rep[mod]["cross_validated"]["loss_fraction"]))
            self.assertLess(abs(loss), 0.05)
            self.assertLess(abs(structured), 0.05)
            self.assertLess(rep[mod]["cross_validated"]["loss_fraction"],
                            0.05)
        self.assertEqual(rep["embedding"]["band_names"][:2],
                         ["shared_0", "shared_1"])

    def test_shared_factors_reproduce_the_cca_maps(self):
        s = self.scene
        b, rep = s.audit("shared", s.file("truth.tif"),
                         "--embedding-bands", "shared_0,shared_1")
        _, ref = s.model_maps("cca", 2)
        for mod in ("optical", "sar"):
            a, r = b["structured_loss_" + mod], ref["structured_loss_" + mod]
            ok = np.isfinite(a) & np.isfinite(r)
            rho = spearman(a[ok], r[ok])
            la = np.nanmean(b["infoloss_" + mod])
            lr = np.nanmean(ref["infoloss_" + mod])
            print("  %s: Spearman audit/cca %.3f, mean infoloss %.4f / %.4f"
                  % (mod, rho, la, lr))
            self.assertGreaterEqual(rho, 0.85)
            self.assertLess(abs(la - lr), 0.05)
            for maps in (b, ref):
                self.assertGreaterEqual(self.specific(maps, mod)[0], 0.7)

    def test_int8_lonlat_product_audits_as_its_float_original(self):
        s = self.scene
        model, _ = s.model_maps("cca4p", 4)
        emb = s.file("emb4p.tif")
        run("embed", "-q", model, s.optical, s.sar, emb)
        e = stack(emb)
        k, h, w = e.shape
        # 64 unit-length dimensions, as the product's vectors are.
        q, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(64, k)))
        y = np.einsum("dk,khw->dhw", q, e)
        y /= np.linalg.norm(y, axis=0, keepdims=True)
        unit = s.file("unit64.tif")
        write_like(unit, s.optical, y.astype(np.float32))
        # Both in EPSG:4326, about the optical pixel size, float...
        floaty = s.file("unit64_4326.tif")
        gdal.Warp(floaty, unit, dstSRS="EPSG:4326", xRes=1.2e-4,
                  yRes=0.9e-4, resampleAlg="near", dstNodata=float("nan"))
        f = stack(floaty)
        # ... and quantized: codes sign(v) sqrt(|v|) 127.5, -128 where
        # invalid and in a masked square.
        codes = np.clip(np.round(np.sign(f) * np.sqrt(np.abs(f)) * 127.5),
                        -127, 127)
        codes[:, ~np.isfinite(f).all(0)] = -128
        codes[:, 40:60, 40:60] = -128
        f[:, 40:60, 40:60] = np.nan
        # The float original with the same mask.
        ref = gdal.Open(floaty, gdal.GA_Update)
        for b in range(64):
            ref.GetRasterBand(b + 1).WriteArray(f[b])
        ref = None
        tmp = s.file("codes.tif")
        write_like(tmp, floaty, codes, ["A%02d" % i for i in range(64)],
                   gdal.GDT_Byte, -128)
        ds = gdal.Open(tmp, gdal.GA_Update)
        for b in range(64):
            ds.GetRasterBand(b + 1).WriteArray(codes[b].astype(np.int8)
                                               .view(np.uint8))
        ds = None
        # A cloud-optimized layout (tiles, overviews first); GDAL 3.6's COG
        # driver writes no 8-bit signed bands, its GeoTIFF driver does.
        ds = gdal.Open(tmp)
        ds.BuildOverviews("NEAREST", [2, 4])
        ds = None
        product = s.file("product.tif")
        gdal.Translate(product, tmp, creationOptions=[
            "PIXELTYPE=SIGNEDBYTE", "TILED=YES", "COPY_SRC_OVERVIEWS=YES",
            "COMPRESS=DEFLATE"])
        # Written as the product is: 8-bit signed, -128 nodata, A00..A63.
        pds = gdal.Open(product)
        self.assertEqual(pds.GetRasterBand(1).GetMetadataItem(
            "PIXELTYPE", "IMAGE_STRUCTURE"), "SIGNEDBYTE")
        self.assertEqual(pds.GetRasterBand(1).GetNoDataValue(), -128)
        pds = None
        bq, rq = s.audit("product", product)
        bf, rf = s.audit("product_float", floaty)
        self.assertEqual(rq["embedding"]["dequantize"], "alphaearth")
        self.assertFalse(rq["embedding"]["on_grid"])
        self.assertEqual(rq["k"], 64)
        for mod in ("optical", "sar"):
            a, r = bq["infoloss_" + mod], bf["infoloss_" + mod]
            self.assertTrue(np.array_equal(np.isnan(a), np.isnan(r)))
            ok = np.isfinite(a)
            d = np.abs(a[ok] - r[ok]).mean()
            cq = rq[mod]["cross_validated"]["r2_aligned"]
            cf = rf[mod]["cross_validated"]["r2_aligned"]
            print("  %s: mean |int8 - float| %.5f (mean loss %.4f); CV R2 "
                  "%.4f / %.4f" % (mod, d, r[ok].mean(), cq, cf))
            self.assertLessEqual(d, 0.005)
            self.assertLess(abs(cq - cf), 0.005)
        # The masked square, put on the optical grid, is NaN in the map.
        self.assertGreater(np.isnan(bq["infoloss_optical"]).sum(), 100)

    def test_an_mmcl_embedding_audits_as_its_infoloss(self):
        s = self.scene
        model, ref = s.model_maps("cca2", 2)
        for mod in ("optical", "sar"):
            emb = s.file("emb2_%s.tif" % mod)
            run("embed", "-q", "--modality", mod, model, s.optical, s.sar,
                emb)
            b, _ = s.audit("emb2_" + mod, emb)
            for band in ("infoloss_", "unimodal_", "excess_"):
                a, r = b[band + mod], ref[band + mod]
                ok = np.isfinite(a) & np.isfinite(r)
                d = np.abs(a[ok] - r[ok]).mean()
                rho = spearman(a[ok], r[ok])
                print("  %s%s: mean |audit - infoloss| %.5f, Spearman %.4f"
                      % (band, mod, d, rho))
                self.assertLessEqual(d, 0.01)
                self.assertGreaterEqual(rho, 0.99)

    def test_map_is_the_same_for_any_tile_and_thread_count(self):
        s = self.scene
        emb = s.file("truth.tif")
        outs = []
        for tile, threads in (("256", "1"), ("48", "3")):
            out = s.file("tiles_%s.tif" % tile)
            run("audit", "-q", emb, s.optical, s.sar, out, "--tile", tile,
                "--threads", threads, "--embedding-bands", "1,3,5")
            outs.append(stack(out))
        self.assertTrue(np.array_equal(outs[0], outs[1], equal_nan=True))
        ds = gdal.Open(s.file("tiles_256.tif"))
        self.assertEqual(ds.GetMetadataItem("PRODUCT", "MMCL"), "audit")
        self.assertEqual(ds.GetRasterBand(1).GetDescription(),
                         "infoloss_optical")
        self.assertTrue(os.path.exists(s.file("tiles_256.qml")))


if __name__ == "__main__":
    unittest.main()
