# SPDX-License-Identifier: MIT
"""The QGIS plugin: registers the mmcl Processing provider, in the desktop
application (initGui) and in qgis_process (initProcessing)."""
from qgis.core import QgsApplication


class MmclPlugin:

    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self):
        from .provider import MmclProvider
        self.provider = MmclProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()
        problem = self.provider.problem() if self.provider else ""
        if problem and self.iface is not None:
            # In the desktop, say it where the user looks: the message bar.
            from qgis.core import Qgis
            self.iface.messageBar().pushMessage(
                "mmcl", problem, level=Qgis.Warning, duration=0)

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
