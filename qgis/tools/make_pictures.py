# SPDX-License-Identifier: MIT
"""Makes the pictures of the QGIS section of the README, with QGIS's own
widgets and map renderer, without a display:

    QT_QPA_PLATFORM=offscreen MMCL_PROGRAM=build/mmcl \\
        /usr/bin/python3 qgis/tools/make_pictures.py [OUTDIR]

- processing_toolbox.png: the Processing Toolbox tree (QGIS's
  QgsProcessingToolboxTreeView, the widget inside the toolbox dock),
  filtered on "mmcl";
- processing_dialog_embed.png: the Processing dialog of mmcl:embed, filled
  in on sample_data/;
- embedding_and_infoloss.png: the outputs of mmcl:train, mmcl:embed and
  mmcl:infoloss on sample_data/, run through Processing, loaded as layers
  and drawn by QGIS's map renderer (the embedding's first three bands as
  RGB, and infoloss_optical with the Viridis ramp).

OUTDIR defaults to qgis/pictures/. Runs with Debian's python3 (python3-qgis)
and QGIS 3.22; an X server is not needed.
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
QGIS_DIR = os.path.dirname(HERE)
SOURCE = os.path.dirname(QGIS_DIR)
SAMPLE = os.path.join(SOURCE, "sample_data")

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, QGIS_DIR)
sys.path.append("/usr/share/qgis/python/plugins")

from qgis.core import (QgsApplication, QgsColorRampShader,  # noqa: E402
                       QgsContrastEnhancement, QgsMapRendererParallelJob,
                       QgsMapSettings, QgsProject,
                       QgsRasterLayer, QgsRasterMinMaxOrigin, QgsRasterShader,
                       QgsSingleBandPseudoColorRenderer, QgsStyle)
from qgis.PyQt.QtCore import QSize, Qt  # noqa: E402
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter  # noqa: E402


def start():
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], True)
    app.initQgis()
    from processing.core.Processing import Processing
    Processing.initialize()
    from mmcl.provider import MmclProvider
    provider = MmclProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    return app, provider


def toolbox_picture(path):
    from qgis.gui import QgsProcessingToolboxTreeView
    view = QgsProcessingToolboxTreeView(
        None, QgsApplication.processingRegistry())
    view.setHeaderHidden(True)
    view.setFilterString("mmcl")
    view.expandAll()
    view.resize(360, 300)
    view.show()
    QgsApplication.processEvents()
    view.grab().save(path)


def dialog_picture(path, params):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    alg = QgsApplication.processingRegistry().createAlgorithmById(
        "mmcl:embed")
    dialog = AlgorithmDialog(alg)
    dialog.setParameters(params)
    dialog.resize(900, 640)
    dialog.show()
    for _ in range(5):
        QgsApplication.processEvents()
    dialog.grab().save(path)
    dialog.close()


def run_chain(work):
    import shutil
    import processing
    # Copies: QGIS writes statistics (.aux.xml) beside the rasters it opens,
    # and sample_data/ stays as it is.
    optical = shutil.copy(os.path.join(SAMPLE, "optical.tif"), work)
    sar = shutil.copy(os.path.join(SAMPLE, "sar.tif"), work)
    model = processing.run("mmcl:train", {
        "OPTICAL": [optical], "SAR": sar, "OBJECTIVE": "cca", "DIM": 8,
        "MODEL": os.path.join(work, "sample_cca.mmcl")})["MODEL"]
    emb = processing.run("mmcl:embed", {
        "MODEL": model, "OPTICAL": [optical], "SAR": sar,
        "OUT": os.path.join(work, "embedding.tif")})["OUT"]
    loss = processing.run("mmcl:infoloss", {
        "MODEL": model, "OPTICAL": [optical], "SAR": sar,
        "OUT": os.path.join(work, "infoloss.tif")})["OUT"]
    return model, optical, sar, emb, loss


def render(layer, size):
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def percentile(path, q):
    import numpy as np
    from osgeo import gdal
    ds = gdal.Open(path)  # kept: the band dies with it
    band = ds.GetRasterBand(1).ReadAsArray()
    return float(np.percentile(band[np.isfinite(band)], q))


def map_picture(path, emb_path, loss_path):
    emb = QgsRasterLayer(emb_path, "embedding")
    emb.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                               QgsRasterMinMaxOrigin.CumulativeCut)
    loss = QgsRasterLayer(loss_path, "infoloss")
    # 0 (all kept) to the 98th percentile, as `mmcl rgb` stretches.
    top = percentile(loss_path, 98.0)
    ramp = QgsStyle.defaultStyle().colorRamp("Viridis")
    shader_fn = QgsColorRampShader(0.0, top, ramp)
    shader_fn.classifyColorRamp(8, 1, loss.extent(), loss.dataProvider())
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    loss.setRenderer(QgsSingleBandPseudoColorRenderer(
        loss.dataProvider(), 1, shader))
    for layer in (emb, loss):
        QgsProject.instance().addMapLayer(layer)

    size, pad, title = 384, 12, 28
    panels = [(render(emb, size), "mmcl:embed: joint embedding "
               "(bands 1-3 as RGB)"),
              (render(loss, size), "mmcl:infoloss: infoloss_optical "
               "(0 to %.2f, Viridis)" % top)]
    image = QImage(2 * size + 3 * pad, size + title + 2 * pad,
                   QImage.Format_ARGB32)
    image.fill(QColor("white"))
    p = QPainter(image)
    font = QFont()
    font.setPointSize(9)
    p.setFont(font)
    for i, (picture, caption) in enumerate(panels):
        x = pad + i * (size + pad)
        p.drawText(x, pad, size, title, Qt.AlignLeft | Qt.AlignVCenter,
                   caption)
        p.drawImage(x, pad + title, picture)
    p.end()
    image.save(path)


def main(argv):
    out = os.path.abspath(argv[1]) if len(argv) > 1 else \
        os.path.join(QGIS_DIR, "pictures")
    os.makedirs(out, exist_ok=True)
    app, provider = start()
    if not provider.algorithms():
        raise SystemExit("the mmcl provider has no algorithms: %s" %
                         provider.longName())
    work = tempfile.mkdtemp(prefix="mmcl-pictures-")
    model, optical, sar, emb, loss = run_chain(work)
    for path in (optical, sar):
        QgsProject.instance().addMapLayer(
            QgsRasterLayer(path, os.path.basename(path)[:-4]))
    toolbox_picture(os.path.join(out, "processing_toolbox.png"))
    dialog_picture(os.path.join(out, "processing_dialog_embed.png"), {
        "MODEL": model, "OPTICAL": [optical], "SAR": sar, "MODALITY": "joint",
        "OUT": os.path.join(work, "embedding.tif")})
    map_picture(os.path.join(out, "embedding_and_infoloss.png"), emb, loss)
    print("pictures in %s (work files in %s)" % (out, work))
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
