# SPDX-License-Identifier: MIT
"""The noise floor and the structured bands of `mmcl infoloss`
(docs/noise.md), checked against what the scenes were made with and
against references computed here with NumPy:

- the noise estimated at training time against the noise `mmcl synth`
  wrote into the scene (within 20 %);
- the floors in the model against the closed form tr(R S R^T) / B of a
  linear encoder (within 5 %: the model's floors are a Monte Carlo
  average over 4096 sample rows);
- structured_loss and structured_excess against the 5 x 5 mean of the
  infoloss and excess bands minus the floors, recomputed from the map
  itself (raster borders and NaN holes included);
- on a redundant scene the structured bands stay within 0.02 of 0
  everywhere; on a specific scene they locate the specific regions
  (Spearman >= 0.8 with the true specific energy inside them); with sharp
  class edges and 3 x 3 patches, class-boundary pixels outside the
  specific regions read within 2x of class interiors in the headline band
  (structured_excess), for cca and clip.
"""
import json
import os
import sys
import unittest

import numpy as np
from osgeo import gdal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmcl_cli import (Workdir, bands, read_safetensors, run,  # noqa: E402
                      spearman)

gdal.UseExceptions()

CLIP = ["--objective", "clip", "--samples", "30000", "--epochs", "10",
        "--batch", "256", "--lr", "0.01"]
WINDOW = 5


def window_mean(a):
    """Mean of the finite values of a over the WINDOW x WINDOW window
    around each pixel, clipped at the raster's border; NaN where a is."""
    s = WINDOW // 2
    h, w = a.shape
    ok = np.isfinite(a)
    v = np.where(ok, a, 0.0)
    total = np.zeros_like(v)
    count = np.zeros_like(v)
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            ys = slice(max(0, -dy), min(h, h - dy))
            yd = slice(max(0, dy), min(h, h + dy))
            xs = slice(max(0, -dx), min(w, w - dx))
            xd = slice(max(0, dx), min(w, w + dx))
            total[ys, xs] += v[yd, xd]
            count[ys, xs] += ok[yd, xd]
    out = total / np.maximum(count, 1)
    out[~ok] = np.nan
    return out


class Scene:
    """A synthetic scene with its models and maps, made once per class."""

    def __init__(self, work, name, *synth_args):
        self.dir = os.path.join(work, name)
        run("synth", self.dir, "-q", "--size", "256", "--seed", "5",
            *synth_args)
        with open(os.path.join(self.dir, "synth.json")) as f:
            self.synth = json.load(f)
        self.optical = os.path.join(self.dir, "optical.tif")
        self.sar = os.path.join(self.dir, "sar.tif")

    def file(self, name):
        return os.path.join(self.dir, name)

    def model(self, name, *args):
        path = self.file(name + ".mmcl")
        if not os.path.exists(path):
            run("train", "-q", self.optical, self.sar, path, "--dim", "2",
                "--patch", "3", *args)
        return path

    def loss(self, name, *args):
        out = self.file("loss_%s.tif" % name)
        if not os.path.exists(out):
            run("infoloss", "-q", self.model(name, *args), self.optical,
                self.sar, out, "--report", out + ".json")
        return bands(out)

    def truth(self, band):
        ds = gdal.Open(self.file("truth.tif"))
        for b in range(ds.RasterCount):
            if ds.GetRasterBand(b + 1).GetDescription() == band:
                return ds.GetRasterBand(b + 1).ReadAsArray()
        raise AssertionError("no truth band " + band)


class NoiseFloor(Workdir):

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.work = tempfile.mkdtemp(prefix="mmcl-noise-")
        cls.noisy = Scene(cls.work, "noisy", "--noise", "0.3",
                          "--sar-holes", "4")
        # At the default noise (0.1): at 0.3 the 5 x 5 means of a
        # floor of 0.08 spread by about 0.008, and the largest of 65536
        # pixels reaches 0.04.
        cls.redundant = Scene(cls.work, "redundant", "--preset", "redundant")
        cls.sharp = Scene(cls.work, "sharp", "--class-blend", "0")

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_noise_estimate_is_the_scene_noise(self):
        for scene in (self.noisy, self.sharp):
            meta, _ = read_safetensors(scene.model("cca"))
            for mod in ("optical", "sar"):
                got = np.array(meta[mod]["noise"]["band_std"])
                want = scene.synth["noise"] * np.array(
                    scene.synth[mod]["scale"])
                print("  %s %s: noise %s, written %s" %
                      (os.path.basename(scene.dir), mod,
                       np.round(got, 4), np.round(want, 4)))
                np.testing.assert_array_less(np.abs(got / want - 1), 0.2)

    def closed_form_floor(self, meta, t, mod, enc_w, dec):
        """tr(R S R^T) / B, R = [centre selection] - D W, S the noise
        covariance of a patch: per band b, its standardized variance times
        rho_b^(|dr| + |dc|) between the patch's pixels."""
        noise = meta[mod]["noise"]
        var = np.array(noise["band_variance_standardized"])
        rho = np.array(noise["band_neighbour_correlation"])
        B, P = len(var), meta["patch"]
        d = B * P * P
        R = -t[dec + ".weight"].astype(np.float64) @ \
            t[enc_w].astype(np.float64)
        for b in range(B):  # the centre pixel of band b in (band, row, col)
            R[b, (b * P + P // 2) * P + P // 2] += 1.0
        S = np.zeros((d, d))
        i = np.arange(P)
        for b in range(B):
            c1 = rho[b] ** np.abs(i[:, None] - i[None, :])
            S[b * P * P:(b + 1) * P * P, b * P * P:(b + 1) * P * P] = \
                var[b] * np.kron(c1, c1)
        self.assertEqual(R.shape, (B, d))
        return float(np.trace(R @ S @ R.T) / B)

    def test_floors_are_the_closed_form_of_a_linear_encoder(self):
        for obj, args in (("cca", ()), ("pca", ("--objective", "pca")),
                          ("enl", ("--sar-enl", "4.4"))):
            meta, t = read_safetensors(self.noisy.model(obj, *args))
            for mod in ("optical", "sar"):
                noise = meta[mod]["noise"]
                al = self.closed_form_floor(meta, t, mod,
                                            "encoder.%s.0.weight" % mod,
                                            "decoder.%s.aligned" % mod)
                uni = self.closed_form_floor(meta, t, mod,
                                             "unimodal.%s.weight" % mod,
                                             "decoder.%s.unimodal" % mod)
                print("  %s %s: floors %.5f / %.5f, closed form %.5f / "
                      "%.5f" % (obj, mod, noise["floor_infoloss"],
                                noise["floor_unimodal"], al, uni))
                self.assertAlmostEqual(noise["floor_infoloss"] / al, 1,
                                       delta=0.05)
                self.assertAlmostEqual(noise["floor_unimodal"] / uni, 1,
                                       delta=0.05)

    def test_sar_enl_sets_the_speckle_floor(self):
        """--sar-enl L: the SAR noise is the speckle of L looks in dB,
        10 / ln 10 sqrt(trigamma(L)), where it is above the noise between
        neighbours (trigamma here: a direct sum with an Euler-Maclaurin
        tail, not the series mmcl uses)."""
        def trigamma(x, n=2000):
            s = sum(1.0 / (x + k) ** 2 for k in range(n))
            y = x + n
            return s + 1 / y + 1 / (2 * y * y) + 1 / (6 * y ** 3)

        meta, _ = read_safetensors(self.noisy.model("enl", "--sar-enl",
                                                    "4.4"))
        want = 10 / np.log(10) * np.sqrt(trigamma(4.4))
        noise = meta["sar"]["noise"]
        self.assertAlmostEqual(noise["speckle_std_db"] / want, 1,
                               delta=1e-9)
        # The scene's 0.75 dB are below 2.19 dB: the speckle is used.
        np.testing.assert_allclose(noise["band_std"], want, rtol=1e-9)
        self.assertLess(max(noise["band_std_between_neighbours"]), 1.0)
        # The neighbour correlation that makes the differences read
        # sigma_diff: 6 sigma_diff^2 = sigma^2 (6 - 8 rho + 2 rho^2).
        for sd, rho in zip(noise["band_std_between_neighbours"],
                           noise["band_neighbour_correlation"]):
            self.assertAlmostEqual(6 * sd * sd,
                                   want * want * (6 - 8 * rho + 2 * rho * rho),
                                   places=9)
        base, _ = read_safetensors(self.noisy.model("cca"))
        self.assertGreater(noise["floor_infoloss"],
                           base["sar"]["noise"]["floor_infoloss"])
        # The optical noise is not touched.
        self.assertEqual(meta["optical"]["noise"]["band_std"],
                         base["optical"]["noise"]["band_std"])

    def test_sar_enl_is_refused_where_it_cannot_hold(self):
        for args, message in (
                (["--sar-linear"], "needs the SAR in dB"),
                (["--speckle", "lee:5"], "not after --speckle's filter")):
            out = self.path("m.mmcl")
            p = run("train", "-q", self.noisy.optical, self.noisy.sar, out,
                    "--sar-enl", "4.4", *args, check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(message, p.stderr)
            self.assertFalse(os.path.exists(out))

    def test_structured_bands_are_window_means_above_the_floor(self):
        b = self.noisy.loss("cca")
        meta, _ = read_safetensors(self.noisy.model("cca"))
        for mod in ("optical", "sar"):
            fa = meta[mod]["noise"]["floor_infoloss"]
            fu = meta[mod]["noise"]["floor_unimodal"]
            loss = b["infoloss_" + mod]
            self.assertTrue(np.isnan(loss).any() or mod == "optical")
            np.testing.assert_array_equal(np.isnan(b["noise_floor_" + mod]),
                                          np.isnan(loss))
            np.testing.assert_allclose(
                b["noise_floor_" + mod][np.isfinite(loss)], fa, rtol=1e-6)
            np.testing.assert_allclose(b["structured_loss_" + mod],
                                       window_mean(loss) - fa, atol=2e-6,
                                       equal_nan=True)
            np.testing.assert_allclose(b["structured_excess_" + mod],
                                       window_mean(b["excess_" + mod]) -
                                       (fa - fu), atol=2e-6, equal_nan=True)

    def test_model_without_noise_estimate_gives_nan_noise_bands(self):
        """A model trained before the noise was estimated (its metadata
        without the "noise" records, rewritten here with the safetensors
        layout): a warning per modality, the three noise bands NaN, the
        other bands as with the noise, and the QGIS style on the excess.
        The model is old.mmcl and its map old.tif: the map's style old.qml
        is no style of the model, which is no QGIS layer."""
        import struct
        with open(self.noisy.model("cca"), "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
        meta = json.loads(header["__metadata__"]["mmcl"])
        for mod in ("optical", "sar"):
            del meta[mod]["noise"]
        header["__metadata__"]["mmcl"] = json.dumps(meta)
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        old = self.path("old.mmcl")
        with open(old, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
        out = self.path("old.tif")
        p = run("infoloss", "-q", old, self.noisy.optical, self.noisy.sar,
                out)
        for mod in ("optical", "sar"):
            self.assertIn("no noise estimate of the %s bands" % mod, p.stderr)
        b, ref = bands(out), self.noisy.loss("cca")
        for mod in ("optical", "sar"):
            for band in ("noise_floor_", "structured_loss_",
                         "structured_excess_"):
                self.assertTrue(np.isnan(b[band + mod]).all())
            np.testing.assert_array_equal(b["excess_" + mod],
                                          ref["excess_" + mod])
        with open(self.path("old.qml")) as f:
            self.assertIn('type="singlebandpseudocolor" band="3"', f.read())

    def test_report_splits_the_loss_into_noise_and_structure(self):
        self.noisy.loss("cca")
        with open(self.noisy.file("loss_cca.tif.json")) as f:
            rep = json.load(f)
        for mod in ("optical", "sar"):
            r = rep[mod]
            self.assertAlmostEqual(r["noise_share"] + r["structured_share"],
                                   1, places=9)
            self.assertAlmostEqual(r["mean_structured_loss"],
                                   r["mean_infoloss"] - r["noise_floor"],
                                   places=9)
            self.assertAlmostEqual(r["fraction_lost"], 1 - r["r2_aligned"],
                                   places=9)
            # At noise 0.3 the floor is a visible part of the loss.
            self.assertGreater(r["noise_share"], 0.05)
            self.assertLess(r["noise_share"], 0.95)

    def test_redundant_scene_has_no_structured_loss(self):
        for obj, args in (("cca", ()), ("clip", CLIP)):
            b = self.redundant.loss(obj, *args)
            for mod in ("optical", "sar"):
                for band in ("structured_loss_", "structured_excess_"):
                    worst = np.nanmax(np.abs(b[band + mod]))
                    print("  redundant %s %s%s: max |.| %.4f (infoloss mean "
                          "%.4f)" % (obj, band, mod, worst,
                                     np.nanmean(b["infoloss_" + mod])))
                    self.assertLessEqual(worst, 0.02)

    def test_structured_loss_locates_the_specific_regions(self):
        for obj, args in (("cca", ()), ("clip", CLIP)):
            b = self.noisy.loss(obj, *args)
            for mod in ("optical", "sar"):
                energy = self.noisy.truth(mod + "_specific_energy")
                for band in ("structured_loss_", "structured_excess_"):
                    v = b[band + mod]
                    inside = (energy > 0) & np.isfinite(v)
                    rho = spearman(v[inside], energy[inside])
                    print("  %s %s%s: Spearman inside the regions %.3f" %
                          (obj, band, mod, rho))
                    self.assertGreaterEqual(rho, 0.8)

    def test_class_edges_do_not_light_up_the_headline_band(self):
        labels = gdal.Open(self.sharp.file("labels.tif")).ReadAsArray()
        edge = np.zeros(labels.shape, bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                edge |= np.roll(np.roll(labels, dy, 0), dx, 1) != labels
        edge[[0, -1], :] = edge[:, [0, -1]] = False
        specific = np.zeros(labels.shape, bool)
        for mod in ("optical", "sar"):
            specific |= self.sharp.truth(mod + "_specific_energy") > 0
        near = specific.copy()
        for _ in range(3 + WINDOW // 2):
            near |= (np.roll(near, 1, 0) | np.roll(near, -1, 0) |
                     np.roll(near, 1, 1) | np.roll(near, -1, 1))
        far = ~edge
        for _ in range(4):
            far &= (np.roll(far, 1, 0) & np.roll(far, -1, 0) &
                    np.roll(far, 1, 1) & np.roll(far, -1, 1))
        self.assertGreater((edge & ~near).sum(), 500)
        for obj, args in (("cca", ()), ("clip", CLIP)):
            b = self.sharp.loss(obj, *args)
            for mod in ("optical", "sar"):
                v = b["structured_excess_" + mod]
                e = float(np.nanmean(v[edge & ~near]))
                i = float(np.nanmean(v[far & ~near]))
                raw = b["infoloss_" + mod]
                print("  %s %s: headline edges %.4f, interiors %.4f "
                      "(infoloss %.4f vs %.4f)" %
                      (obj, mod, e, i, np.nanmean(raw[edge & ~near]),
                       np.nanmean(raw[far & ~near])))
                if abs(i) > 0.01:
                    self.assertTrue(0.5 <= e / i <= 2.0, (e, i))
                else:
                    self.assertLessEqual(abs(e), 0.02)


if __name__ == "__main__":
    unittest.main()
