# SPDX-License-Identifier: MIT
"""The QGIS style mmcl writes beside each map (x.qml beside x.tif, or
x.mmcl.qml beside a lazy descriptor), applied to the layers Processing
loads when an algorithm ends: QGIS applies it to a file the user opens,
but Processing loads its results without their default style."""
import os

from qgis.core import QgsProcessingLayerPostProcessorInterface


class DefaultStyle(QgsProcessingLayerPostProcessorInterface):
    """Loads the layer's default style (the .qml beside it)."""

    def postProcessLayer(self, layer, context, feedback):
        ok = False
        try:
            _, ok = layer.loadDefaultStyle()
        except (AttributeError, TypeError):
            pass
        if ok:
            layer.triggerRepaint()


# Processing keeps only a C++ pointer to a post-processor: the Python
# object lives here.
_POST_PROCESSOR = DefaultStyle()


def style_path(path):
    """Where QGIS looks for the style of @p path."""
    return os.path.splitext(path)[0] + ".qml"


def apply_on_load(context, results):
    """For each result that Processing will load and that has a style
    beside it, loads the style with the layer."""
    for path in results.values():
        if not isinstance(path, str) or not os.path.isfile(style_path(path)):
            continue
        if context.willLoadLayerOnCompletion(path):
            details = context.layerToLoadOnCompletionDetails(path)
            details.setPostProcessor(_POST_PROCESSOR)
