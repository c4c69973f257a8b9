# SPDX-License-Identifier: MIT
"""PyQGIS side of tests/qgis/test_qgis_provider.py: a bare PyQGIS script,
as a user writes one, that starts QGIS without a GUI, initializes
Processing, registers the mmcl provider from QGIS_PLUGINPATH and runs
processing.run(). It prints one JSON document on its last line.

    python3 pyqgis_helper.py embed MODEL OPTICAL SAR OUT
    python3 pyqgis_helper.py cancel MODEL OPTICAL SAR OUT
    python3 pyqgis_helper.py modeler WORKDIR SIZE SEED DIM OUT

Needs Debian's python3 with python3-qgis, and MMCL_PROGRAM (or mmcl on
PATH).
"""
import json
import os
import sys
import time

from qgis.core import (QgsApplication, QgsProcessingException,
                       QgsProcessingFeedback, QgsProject, QgsRasterLayer)


def start_qgis():
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing
    Processing.initialize()
    for folder in os.environ.get("QGIS_PLUGINPATH", "").split(os.pathsep):
        if folder:
            sys.path.insert(0, folder)
    from mmcl.provider import MmclProvider
    provider = MmclProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    return app, provider


def layer_facts(layer):
    e = layer.extent()
    return {"valid": layer.isValid(), "crs": layer.crs().authid(),
            "bands": layer.bandCount(), "width": layer.width(),
            "height": layer.height(),
            "extent": [e.xMinimum(), e.yMinimum(), e.xMaximum(),
                       e.yMaximum()],
            "source": layer.source()}


def embed(model, optical, sar, out):
    import processing
    from qgis.core import QgsProcessingContext
    context = QgsProcessingContext()
    result = processing.run("mmcl:embed", {
        "MODEL": model, "OPTICAL": [optical], "SAR": sar,
        "MODALITY": "joint", "OUT": out}, context=context)
    layer = QgsRasterLayer(result["OUT"], "embedding")
    # As the Processing dialog does: the output is loaded into the project.
    loaded = processing.runAndLoadResults("mmcl:embed", {
        "MODEL": model, "OPTICAL": [optical], "SAR": sar,
        "OUT": "TEMPORARY_OUTPUT"})
    project_layer = None
    for candidate in QgsProject.instance().mapLayers().values():
        if candidate.source() == loaded["OUT"]:
            project_layer = candidate
    return {"result": result, "layer": layer_facts(layer),
            "loaded": loaded,
            "project_layer": layer_facts(project_layer)
            if project_layer else None}


class CancelAt(QgsProcessingFeedback):
    """Cancels once the progress bar passes @p percent."""

    def __init__(self, percent, folder):
        super().__init__()
        self.percent = percent
        self.folder = folder
        self.seen = []         # progress values, in order
        self.children = set()  # mmcl processes seen running
        self.during = []       # what the output folder held at cancel time
        self.progressChanged.connect(self.on_progress)

    def on_progress(self, value):
        self.seen.append(value)
        self.children |= mmcl_children()
        if value >= self.percent and not self.isCanceled():
            self.during = sorted(os.listdir(self.folder))
            self.cancelled_at = time.monotonic()
            self.cancel()


def mmcl_children():
    """Pids of the running mmcl programs this process started."""
    me, pids = os.getpid(), set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == me:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() == "mmcl":
                        pids.add(int(pid))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def cancel(model, optical, sar, out):
    import processing
    folder = os.path.dirname(out)
    feedback = CancelAt(10.0, folder)
    start = time.monotonic()
    error = None
    try:
        processing.run("mmcl:embed", {
            "MODEL": model, "OPTICAL": [optical], "SAR": sar,
            "THREADS": 1, "OUT": out}, feedback=feedback)
    except QgsProcessingException as e:
        error = str(e)
    end = time.monotonic()
    alive = sorted(p for p in feedback.children
                   if os.path.exists("/proc/%d" % p))
    return {"error": error, "progress": feedback.seen,
            "children": sorted(feedback.children), "alive": alive,
            "left": sorted(os.listdir(folder)), "during": feedback.during,
            "seconds_after_cancel": end - getattr(feedback, "cancelled_at",
                                                  start),
            "seconds": end - start}


def modeler(workdir, size, seed, dim, out):
    """synth -> train -> embed as a Graphical Modeler model, each child
    taking the previous child's outputs."""
    import processing
    from qgis.core import (QgsProcessingModelAlgorithm,
                           QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource as Source,
                           QgsProcessingModelOutput)

    def child(alg_id, child_id, sources):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(child_id)
        for name, source in sources.items():
            c.addParameterSources(name, [source])
        return c

    model = QgsProcessingModelAlgorithm("mmcl chain", "mmcl tests")
    synth = child("mmcl:synth", "synth", {
        "SIZE": Source.fromStaticValue(size),
        "SEED": Source.fromStaticValue(seed),
        "OUTDIR": Source.fromStaticValue(os.path.join(workdir, "scene"))})
    train = child("mmcl:train", "train", {
        "OPTICAL": Source.fromChildOutput("synth", "OPTICAL"),
        "SAR": Source.fromChildOutput("synth", "SAR"),
        "DIM": Source.fromStaticValue(dim),
        "MODEL": Source.fromStaticValue(os.path.join(workdir,
                                                     "model.mmcl"))})
    embed = child("mmcl:embed", "embed", {
        "MODEL": Source.fromChildOutput("train", "MODEL"),
        "OPTICAL": Source.fromChildOutput("synth", "OPTICAL"),
        "SAR": Source.fromChildOutput("synth", "SAR")})
    output = QgsProcessingModelOutput("embedding")
    output.setChildId("embed")
    output.setChildOutputName("OUT")
    embed.setModelOutputs({"embedding": output})
    for c in (synth, train, embed):
        model.addChildAlgorithm(c)
    model.updateDestinationParameters()
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "chain.model3")
    if not model.toFile(path):
        raise SystemExit("cannot write %s" % path)
    reread = QgsProcessingModelAlgorithm()
    if not reread.fromFile(path):
        raise SystemExit("cannot read %s" % path)
    names = [p.name() for p in reread.parameterDefinitions()]
    result = processing.run(reread, {names[0]: out})
    return {"parameters": names, "result": result,
            "layer": layer_facts(QgsRasterLayer(out, "embedding"))}


def main(argv):
    app, provider = start_qgis()
    print("provider %s: %d algorithms" % (provider.longName(),
                                          len(provider.algorithms())))
    what, args = argv[1], argv[2:]
    if what == "embed":
        facts = embed(*args)
    elif what == "cancel":
        facts = cancel(*args)
    elif what == "modeler":
        facts = modeler(args[0], int(args[1]), int(args[2]), int(args[3]),
                        args[4])
    else:
        raise SystemExit("unknown test %s" % what)
    print(json.dumps(facts, default=str))
    sys.stdout.flush()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
