# SPDX-License-Identifier: MIT
"""mmcl for QGIS: a Processing provider that runs the mmcl program."""


def classFactory(iface):
    from .plugin import MmclPlugin
    return MmclPlugin(iface)
