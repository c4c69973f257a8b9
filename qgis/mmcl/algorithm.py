# SPDX-License-Identifier: MIT
"""One Processing algorithm per mmcl command, built from the command's
machine-readable description (`mmcl COMMAND --json-usage`), so that the
program and QGIS never disagree about an argument, a default or a choice.

How the description maps onto Processing parameters:

    positional raster_in            QgsProcessingParameterRasterLayer
    positional raster_in, multiple  QgsProcessingParameterMultipleLayers (rasters)
    positional raster_in with a     the same: one layer goes as the positional,
      "flag" (SAR: --sar)           several as one flag each (--sar a --sar b)
    positional file_in              QgsProcessingParameterFile (*.mmcl for MODEL)
    positional raster_out           QgsProcessingParameterRasterDestination
    positional file_out             QgsProcessingParameterFileDestination (*.mmcl)
    positional folder_out           QgsProcessingParameterFolderDestination
    option enum                     QgsProcessingParameterEnum, valued by its choices
    option bool                     QgsProcessingParameterBoolean
    option int, double              QgsProcessingParameterNumber (default, min, max)
    option string                   QgsProcessingParameterString
    option list (-co)               QgsProcessingParameterString, items split on '|'

What QGIS decides rather than the program:

- OVERWRITE is not a parameter: --overwrite is always passed, because QGIS
  asks before it replaces a destination file (mmcl still replaces only an
  earlier output of the same kind, never an input or a file of another
  kind).
- FORMAT is empty by default, which means "from the output file's
  extension" (.tif: GTiff, .png: PNG), as in QGIS's GDAL provider.
- -q is never passed: the progress bar feeds the Processing progress bar.
- infoloss and audit always write their JSON report (to a temporary file
  when the REPORT output is skipped; not for a lazy descriptor, which has
  no figures yet), and train reads its figures back with
  `mmcl info --json`, so that the figures come back as outputs.
- probe runs with --json (its only machine-readable output); its outputs
  are all optional: the CSV and the prediction map (MAP, loaded as a
  layer) that mmcl writes, and the table as an HTML report (OUT) for the
  results viewer and the JSON report (REPORT), which the provider writes.
"""
import html
import json
import os
import sys

from qgis.core import (QgsApplication, QgsProcessing,
                       QgsProcessingAlgorithm,
                       QgsProcessingException, QgsProcessingFeedback,
                       QgsProcessingOutputFile,
                       QgsProcessingOutputNumber,
                       QgsProcessingOutputRasterLayer,
                       QgsProcessingOutputString,
                       QgsProcessingParameterBoolean,
                       QgsProcessingParameterDefinition,
                       QgsProcessingParameterEnum,
                       QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination,
                       QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString, QgsProcessingUtils,
                       QgsRasterFileWriter)

from qgis.PyQt.QtCore import QCoreApplication

from . import runner, styles

# The commands offered in Processing, in the toolbox's order, with their
# titles and groups. `mmcl info` only prints a model's description and has
# no algorithm.
TITLES = {
    "synth": "Synthetic scene",
    "align": "Align SAR on the optical grid",
    "train": "Train a model",
    "embed": "Embedding map",
    "infoloss": "Information-loss map",
    "audit": "Audit an embedding raster",
    "rgb": "Picture (RGB) of a raster",
    "probe": "Linear probe against labels",
    "coreg": "Co-registration check (SAR shift field)",
}
GROUPS = {
    "synth": "Data", "align": "Data", "coreg": "Data",
    "train": "Learning", "probe": "Learning",
    "embed": "Maps", "infoloss": "Maps", "audit": "Maps", "rgb": "Maps",
}

# Short parameter labels; the program's help text becomes the tooltip and
# the help pane. Names not listed are turned into words ("ERROR_THRESHOLD":
# "Error threshold").
LABELS = {
    "OPTICAL": "Optical raster(s)",
    "SAR": "SAR raster",
    "LABELS": "Label raster",
    "EMBEDDING": "Embedding raster",
    "IN": "Input raster",
    "MODEL": "Model (.mmcl)",
    "OUTDIR": "Output folder",
    "DIM": "Embedding dimension (k)",
    "PATCH": "Patch edge (pixels)",
    "SAMPLES": "Samples",
    "CO": "Creation options (NAME=VALUE|...)",
    "FORMAT": "Output format (empty: from the file extension)",
    "RESAMPLING": "SAR resampling",
    "SAR_TRANSFORM": "SAR transform",
    "SPECKLE": "Speckle filter",
    "SAR_ENL": "SAR looks (ENL) for the noise floor (0: from the data; "
               "4.4: Sentinel-1 IW GRD)",
    "TILE": "Tile edge (pixels)",
    "THREADS": "Threads (0: one per core)",
    "LAZY": "Lazy product (.mmcl.json descriptor, needs the MMCL GDAL driver)",
    "NON_REDUNDANCY": "Also write the non-redundancy bands",
    "MASK": "Validity mask",
    "LEGEND": "Write the colour scale beside the picture",
    "LEGEND_INSET": "Also draw the colour scale into the picture",
    "SAR_SRS": "SAR CRS (e.g. EPSG:32630)",
    "SAR_RES": "SAR pixel size (in SAR CRS units)",
    "LR": "Learning rate",
    "SAR_SHIFT": "SAR misregistration to correct: DX,DY (optical pixels)",
    "SAR_SHIFT_FIELD": "SAR shift field to correct with (mmcl coreg)",
    "SHIFT_MIN_CONFIDENCE": "Shift field: minimum confidence of a block",
    "OVER": "Shift field: optical raster to draw the colour wheel over",
}
# Labels of options that mean something else in one command.
COMMAND_LABELS = {
    ("synth", "SAR_SHIFT"): "SAR misregistration to make: DX,DY (optical "
                            "pixels)",
    ("synth", "SAR_SHIFT_FIELD"): "Smooth SAR misregistration to make: "
                                  "amplitude (optical pixels)",
}
# Output labels for the positional outputs, by command.
OUTPUT_LABELS = {
    "align": "Aligned SAR",
    "embed": "Embedding",
    "infoloss": "Information loss",
    "audit": "Audit map (information loss)",
    "rgb": "Picture",
    "train": "Model",
    "synth": "Scene folder",
    "coreg": "Shift field",
}

# Options shown under "Advanced parameters".
ADVANCED_ALWAYS = {"TILE", "THREADS", "CO", "FORMAT", "LAZY",
                   "ERROR_THRESHOLD", "STACK_RESAMPLING", "SEED",
                   "SHIFT_MIN_CONFIDENCE"}
ADVANCED = {
    "train": {"ENCODER", "ACTIVATION", "EPOCHS", "BATCH", "LR",
              "WEIGHT_DECAY", "TEMPERATURE", "RIDGE", "SHARED_OBJECTIVE",
              "PRIVATE_DIM", "RESAMPLING", "SAR_TRANSFORM", "SPECKLE"},
    "synth": {"PIXEL_SIZE", "OPTICAL_BANDS", "SAR_BANDS", "SHARED",
              "OPTICAL_SPECIFIC", "SAR_SPECIFIC", "SPECIFIC_GAIN", "NOISE",
              "CLASSES", "SAR_SRS", "SAR_RES", "NODATA_FRAME", "SAR_HOLES",
              "CLASS_BLEND"},
    "probe": {"LABEL_BAND", "LABEL_NODATA", "RIDGE", "BLOCKS", "DEQUANTIZE",
              "EMBEDDING_BANDS", "EMBEDDING_RESAMPLING"},
    "embed": {"MASK"},
    "infoloss": {"MASK"},
    "audit": {"MASK", "DEQUANTIZE", "EMBEDDING_BANDS", "EMBEDDING_RESAMPLING",
              "SAMPLES", "BLOCKS", "RESAMPLING", "SAR_TRANSFORM", "SPECKLE"},
    "rgb": {"BANDS", "RANGE", "STRETCH"},
    "coreg": {"MIN_CONFIDENCE", "RESAMPLING", "SPECKLE"},
}

# Options that QGIS sets itself (see the module comment).
HIDDEN = {"OVERWRITE"}

# Options whose value is a file the program writes: a destination, not a
# string (the JSON description has no kind for options): (label, filter).
FILE_OPTIONS = {("infoloss", "REPORT"): ("JSON report",
                                         "JSON report (*.json)"),
                ("coreg", "REPORT"): ("JSON report", "JSON report (*.json)"),
                ("audit", "REPORT"): ("JSON report", "JSON report (*.json)"),
                ("probe", "CSV"): ("Figures (CSV)", "CSV files (*.csv)")}
# Options whose value is a raster the program writes: optional raster
# destinations, loaded as layers when given.
RASTER_OPTIONS = {("probe", "MAP"): "Prediction map (held-out blocks)"}
# Options whose value is a raster the program reads: optional raster
# layers (any command that has them).
RASTER_INPUT_OPTIONS = {"SAR_SHIFT_FIELD", "OVER"}

# What `mmcl synth OUTDIR` writes into OUTDIR (its help text names them).
SYNTH_PRODUCTS = (("OPTICAL", "optical.tif", "Optical raster"),
                  ("SAR", "sar.tif", "SAR raster"),
                  ("LABELS", "labels.tif", "Land-cover labels"),
                  ("TRUTH", "truth.tif", "Generating factors (truth)"))

MODEL_FILTER = "mmcl model (*.mmcl)"


KINDS = {"raster_in", "file_in", "raster_out", "file_out", "folder_out"}
TYPES = {"enum", "bool", "int", "double", "string", "list"}


def unsupported(usage):
    """Why a command's description cannot become an algorithm, or None.

    A newer program may describe an argument this provider does not know;
    that command is then left out rather than offered half-working.
    """
    for p in usage.get("positional", []):
        if p.get("kind") not in KINDS:
            return "argument %s has the unknown kind '%s'" % (p.get("name"),
                                                              p.get("kind"))
    for o in usage.get("options", []):
        if o.get("type") not in TYPES:
            return "option %s has the unknown type '%s'" % (o.get("name"),
                                                            o.get("type"))
        if o.get("type") == "enum" and not o.get("choices"):
            return "option %s has no choices" % o.get("name")
    return None


def _label(name):
    return LABELS.get(name, name.replace("_", " ").capitalize())


def _plain_help():
    """Whether help text is shown as it is (qgis_process, PyQGIS): the
    desktop's dialogs read it as HTML, one paragraph a line."""
    return QgsApplication.platform() != "desktop"


def _default_note(o):
    """" {choices} [default: D]" for an option, as `mmcl CMD --help`."""
    note = ""
    if o.get("choices"):
        note += " {%s}" % "|".join(o["choices"])
    if o["name"] == "FORMAT":
        note += " [default: from the output file's extension, else %s]" % (
            o.get("default") or "GTiff")
    elif o.get("default") not in (None, ""):
        note += " [default: %s]" % o["default"]
    return note


class MmclAlgorithm(QgsProcessingAlgorithm):
    """A Processing algorithm that runs one mmcl command."""

    def __init__(self, usage, program_getter):
        super().__init__()
        self._usage = usage
        self._command = usage["command"]
        self._program_getter = program_getter
        self._options = {o["name"]: o for o in usage.get("options", [])}

    def createInstance(self):
        return MmclAlgorithm(self._usage, self._program_getter)

    # Identity ------------------------------------------------------------

    def name(self):
        return self._command

    def displayName(self):
        return TITLES.get(self._command, self._command)

    def group(self):
        return GROUPS.get(self._command, "Other")

    def groupId(self):
        return self.group().lower()

    def tags(self):
        return ["mmcl", self._command, "optical", "sar", "sentinel",
                "embedding", "multimodal"]

    def shortDescription(self):
        return self._usage.get("summary", "")

    def shortHelpString(self):
        """Plain text, one paragraph a line: qgis_process prints it as it
        is, and the desktop's dialogs make each line a paragraph (there
        the text is escaped, as they read it as HTML)."""
        u = self._usage
        summary = u.get("summary", "")
        lines = ["%s%s (mmcl %s)." % (summary[:1].upper(), summary[1:],
                                      self._command), ""]
        for p in u.get("positional", []):
            lines.append("%s: %s" % (p["name"], p.get("help", "")))
        for o in u.get("options", []):
            if o["name"] in HIDDEN:
                continue
            lines.append("%s: %s%s" % (o["name"], o.get("help", ""),
                                       _default_note(o)))
        lines += ["", "A choice is given by its name or by its number in "
                  "the list (0 for the first).",
                  "Outputs are always replaced (--overwrite): QGIS asks "
                  "before it replaces a file. mmcl replaces only an earlier "
                  "output of the same kind, never an input."]
        text = "\n".join(lines)
        return text if _plain_help() else html.escape(text)

    def helpUrl(self):
        return ""

    # Parameters ----------------------------------------------------------

    def initAlgorithm(self, config=None):
        cmd = self._command
        for p in self._usage.get("positional", []):
            param = self._positional_parameter(p)
            param.setHelp(p.get("help", ""))
            self.addParameter(param)
        for o in self._usage.get("options", []):
            if o["name"] in HIDDEN:
                continue
            param = self._option_parameter(o)
            param.setHelp(o.get("help", "") + _default_note(o))
            if (o["name"] in ADVANCED_ALWAYS or
                    o["name"] in ADVANCED.get(cmd, ())):
                param.setFlags(param.flags() |
                               QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(param)
        self._extra_parameters_and_outputs()

    def _positional_parameter(self, p):
        name, kind = p["name"], p["kind"]
        if kind == "raster_in" and (p.get("multiple") or p.get("flag")):
            return QgsProcessingParameterMultipleLayers(
                name, _label(name), QgsProcessing.TypeRaster)
        if kind == "raster_in":
            return QgsProcessingParameterRasterLayer(name, _label(name))
        if kind == "file_in":
            return QgsProcessingParameterFile(
                name, _label(name), QgsProcessingParameterFile.File,
                fileFilter=MODEL_FILTER if name == "MODEL"
                else "All files (*)")
        label = OUTPUT_LABELS.get(self._command, _label(name))
        if kind == "raster_out":
            return QgsProcessingParameterRasterDestination(name, label)
        if kind == "file_out":
            return QgsProcessingParameterFileDestination(
                name, label, MODEL_FILTER if name == "MODEL"
                else "All files (*)")
        if kind == "folder_out":
            return QgsProcessingParameterFolderDestination(name, label)
        raise QgsProcessingException(
            "mmcl %s: argument %s has a kind the QGIS provider does not "
            "know (%s)" % (self._command, name, kind))

    def _option_parameter(self, o):
        name, kind, default = o["name"], o["type"], o.get("default")
        label = COMMAND_LABELS.get((self._command, name), _label(name))
        if (self._command, name) in FILE_OPTIONS:
            title, filt = FILE_OPTIONS[(self._command, name)]
            return QgsProcessingParameterFileDestination(
                name, title, filt, optional=True, createByDefault=False)
        if (self._command, name) in RASTER_OPTIONS:
            return QgsProcessingParameterRasterDestination(
                name, RASTER_OPTIONS[(self._command, name)], optional=True,
                createByDefault=False)
        # A raster it reads (synth's SAR_SHIFT_FIELD is a number).
        if name in RASTER_INPUT_OPTIONS and kind == "string":
            return QgsProcessingParameterRasterLayer(name, label,
                                                     optional=True)
        if kind == "enum":
            # The choices themselves are the values (OBJECTIVE=cca), not
            # their indices, as on the command line.
            choices = o["choices"]
            return QgsProcessingParameterEnum(
                name, label, choices, allowMultiple=False,
                defaultValue=default if default in choices else choices[0],
                optional=False, usesStaticStrings=True)
        if kind == "bool":
            return QgsProcessingParameterBoolean(
                name, label, defaultValue=default == "YES")
        if kind in ("int", "double"):
            number = (QgsProcessingParameterNumber.Integer if kind == "int"
                      else QgsProcessingParameterNumber.Double)
            value = None
            if default is not None:
                value = int(default) if kind == "int" else float(default)
            param = QgsProcessingParameterNumber(
                name, label, number, defaultValue=value,
                optional=default is None)
            if o.get("min") is not None:
                param.setMinimum(float(o["min"]))
            if o.get("max") is not None:
                param.setMaximum(float(o["max"]))
            return param
        if kind == "string" and name == "FORMAT":
            return QgsProcessingParameterString(name, label, optional=True)
        if kind in ("string", "list"):
            return QgsProcessingParameterString(
                name, label, defaultValue=default, optional=True)
        raise QgsProcessingException(
            "mmcl %s: option %s has a type the QGIS provider does not know "
            "(%s)" % (self._command, name, kind))

    def _extra_parameters_and_outputs(self):
        cmd = self._command
        if cmd == "synth":
            for name, _, label in SYNTH_PRODUCTS:
                self.addOutput(QgsProcessingOutputRasterLayer(name, label))
            self.addOutput(QgsProcessingOutputFile(
                "SYNTH_JSON", "Generating parameters (synth.json)"))
        elif cmd == "train":
            for name, label in (
                    ("R2_ALIGNED_OPTICAL", "Optical R2 kept by the aligned "
                     "embedding"),
                    ("R2_ALIGNED_SAR", "SAR R2 kept by the aligned embedding"),
                    ("LOSS_FRACTION_OPTICAL", "Optical loss fraction"),
                    ("LOSS_FRACTION_SAR", "SAR loss fraction")):
                self.addOutput(QgsProcessingOutputNumber(name, label))
            self.addOutput(QgsProcessingOutputString(
                "FIGURES", "Training figures (JSON)"))
        elif cmd in ("infoloss", "audit"):
            if cmd == "audit":
                for name, label in (
                        ("R2_ALIGNED_OPTICAL", "Optical R2 kept by the "
                         "embedding (cross-validated)"),
                        ("R2_ALIGNED_SAR", "SAR R2 kept by the embedding "
                         "(cross-validated)")):
                    self.addOutput(QgsProcessingOutputNumber(name, label))
            for name, label in (
                    ("LOSS_FRACTION_OPTICAL", "Optical loss fraction"),
                    ("LOSS_FRACTION_SAR", "SAR loss fraction"),
                    ("MEAN_INFOLOSS_OPTICAL", "Mean optical information loss"),
                    ("MEAN_INFOLOSS_SAR", "Mean SAR information loss")):
                self.addOutput(QgsProcessingOutputNumber(name, label))
        elif cmd == "probe":
            self.addParameter(QgsProcessingParameterFileDestination(
                "OUT", "Probe report", "HTML files (*.html)",
                optional=True, createByDefault=False))
            self.addParameter(QgsProcessingParameterFileDestination(
                "REPORT", "JSON report", "JSON report (*.json)",
                optional=True, createByDefault=False))
            for name, label in (
                    ("GAP_OPTICAL", "Optical sigma-informativeness gap"),
                    ("GAP_SAR", "SAR sigma-informativeness gap"),
                    ("CHANCE", "Largest class share (classes) or 0"),
                    ("BASELINE_MACRO_F1", "Macro F1 of the majority class "
                     "(classes) or 0")):
                self.addOutput(QgsProcessingOutputNumber(name, label))
        elif cmd == "rgb":
            self.addOutput(QgsProcessingOutputFile(
                "LEGEND", "Colour scale (legend PNG)"))

    # Running -------------------------------------------------------------

    def _choices_by_name(self, parameters):
        """@p parameters with each choice given by its number (MODALITY=2,
        as qgis_process help lists them) replaced by its name."""
        named = dict(parameters)
        for name, o in self._options.items():
            if o["type"] == "enum" and name in named:
                named[name] = _choice_name(o, named[name])
        return named

    def checkParameterValues(self, parameters, context):
        return super().checkParameterValues(
            self._choices_by_name(parameters), context)

    def canExecute(self):
        program = self._program_getter()
        if not program:
            return False, ("The mmcl program was not found. Set its path in "
                           "%s, or put it on PATH." % runner.SETTING)
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):
        try:
            return self._process(parameters, context, feedback)
        except QgsProcessingException as e:
            _show_error_once(str(e))
            raise

    def _process(self, parameters, context, feedback):
        program = self._program_getter()
        if not program:
            raise QgsProcessingException(self.canExecute()[1])
        if feedback is None:
            feedback = QgsProcessingFeedback()
        cmd = self._command
        args, folders, results = [], [], {}
        positional = []
        for p in self._usage.get("positional", []):
            positional += self._positional_values(p, parameters, context,
                                                  folders, results)
        for o in self._usage.get("options", []):
            args += self._option_args(o, parameters, context)
        if "OVERWRITE" in self._options:
            args += _flag_words(self._options["OVERWRITE"], "YES")
        # infoloss and audit write their JSON report for the figures; a
        # lazy descriptor has none (its figures are computed when read).
        lazy = "LAZY" in self._options and self.parameterAsBoolean(
            parameters, "LAZY", context)
        report = None
        if cmd in ("infoloss", "audit") and not lazy:
            report = self.parameterAsFileOutput(parameters, "REPORT", context)
            if not report:
                report = os.path.join(QgsProcessingUtils.tempFolder(),
                                      "mmcl_%s_report.json" % cmd)
            else:
                results["REPORT"] = report
                folders.append(os.path.dirname(os.path.abspath(report)))
            args += ["--report", report]
        capture = cmd == "probe"
        if capture:
            args += self._probe_output_args(parameters, context, folders,
                                            results)
            args.append("--json")
            feedback.pushInfo("mmcl probe prints no progress bar with "
                              "--json; the bar moves when it is done.")
        out = runner.run(program, cmd, args + positional, feedback,
                         output_folders=folders, capture_stdout=capture)
        feedback.setProgress(100)
        self._finish(program, out, parameters, context, feedback, results)
        styles.apply_on_load(context, results)
        if report:
            self._infoloss_figures(report, results)
        return results

    def _probe_output_args(self, parameters, context, folders, results):
        """--csv and --map of probe, when those outputs are asked for."""
        args = []
        for name, flag in (("CSV", "--csv"), ("MAP", "--map")):
            if name not in self._options:
                continue
            if name == "MAP":
                path = self.parameterAsOutputLayer(parameters, name, context)
            else:
                path = self.parameterAsFileOutput(parameters, name, context)
            if not path:
                continue
            folders.append(os.path.dirname(os.path.abspath(path)))
            results[name] = path
            args += [flag, path]
        return args

    def _positional_values(self, p, parameters, context, folders, results):
        name, kind = p["name"], p["kind"]
        if kind == "raster_in" and p.get("flag"):
            # The SAR: one layer is the positional argument; several go as
            # one --sar each, in the order given (the program then reads
            # every positional raster as optical).
            files = self._raster_values(dict(p, multiple=True), parameters,
                                        context)
            if len(files) == 1:
                return files
            words = []
            for f in files:
                words += [p["flag"], f]
            return words
        if kind == "raster_in":
            return self._raster_values(p, parameters, context)
        return self._output_value(p, parameters, context, folders, results)

    def _raster_values(self, p, parameters, context):
        name = p["name"]
        files = _plain_files(parameters.get(name))
        if files:
            return files
        if p.get("multiple"):
            layers = self.parameterAsLayerList(parameters, name, context)
            raw = parameters.get(name)
            items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
            # parameterAsLayerList drops what it cannot open: refuse that
            # rather than run with fewer rasters than given.
            if not layers or len(layers) != len(items):
                bad = [str(i) for i in items if isinstance(i, str) and
                       QgsProcessingUtils.mapLayerFromString(
                           i, context) is None]
                raise QgsProcessingException(_cannot_open(name, bad or
                                                          items))
            return [self._raster_source(layer, name) for layer in layers]
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(
                _cannot_open(name, [parameters.get(name)]))
        return [self._raster_source(layer, name)]

    def _output_value(self, p, parameters, context, folders, results):
        name, kind = p["name"], p["kind"]
        if kind == "file_in":
            path = self.parameterAsFile(parameters, name, context)
            if not path:
                raise QgsProcessingException("%s: no file given" % name)
            return [path]
        if kind == "raster_out":
            path = self.parameterAsOutputLayer(parameters, name, context)
        else:
            path = self.parameterAsFileOutput(parameters, name, context)
        if kind == "folder_out":
            os.makedirs(path, exist_ok=True)
            folders.append(path)
        else:
            folders.append(os.path.dirname(os.path.abspath(path)))
        results[name] = path
        return [path]

    @staticmethod
    def _raster_source(layer, name):
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                "%s: mmcl reads rasters through GDAL; the layer '%s' comes "
                "from the '%s' provider" % (name, layer.name(),
                                            layer.providerType()))
        return layer.source()

    def _option_args(self, o, parameters, context):
        """The command-line words for option @p o, or [] for its default."""
        name, kind, default = o["name"], o["type"], o.get("default")
        if (name in HIDDEN or (self._command, name) in FILE_OPTIONS or
                (self._command, name) in RASTER_OPTIONS):
            return []
        value = parameters.get(name)
        if (name in RASTER_INPUT_OPTIONS and kind == "string" and
                value not in (None, "")):
            layer = self.parameterAsRasterLayer(parameters, name, context)
            if layer is None:
                raise QgsProcessingException(
                    "%s: cannot open the raster '%s'" % (name, value))
            return _flag_words(o, self._raster_source(layer, name))
        if value is None or (isinstance(value, str) and value == ""):
            if name == "FORMAT":
                return self._format_from_extension(o, parameters, context)
            return []
        if kind == "enum":
            text = _choice_name(o, value)
            if text not in o["choices"]:
                text = self.parameterAsEnumString(parameters, name, context)
            return [] if text == default else _flag_words(o, text)
        if kind == "bool":
            flag = self.parameterAsBoolean(parameters, name, context)
            text = "YES" if flag else "NO"
            return [] if text == (default or "NO") else _flag_words(o, text)
        if kind == "int":
            number = self.parameterAsInt(parameters, name, context)
            if default is not None and number == int(default):
                return []
            return _flag_words(o, str(number))
        if kind == "double":
            number = self.parameterAsDouble(parameters, name, context)
            if default is not None and number == float(default):
                return []
            return _flag_words(o, repr(number))
        text = self.parameterAsString(parameters, name, context).strip()
        if kind == "list":
            words = []
            for item in text.split("|"):
                if item.strip():
                    words += _flag_words(o, item.strip())
            return words
        if not text or text == default:
            return []
        return _flag_words(o, text)

    def _format_from_extension(self, o, parameters, context):
        """-of from the extension of the raster output, as GDAL's provider."""
        if parameters.get("LAZY") and self.parameterAsBoolean(
                parameters, "LAZY", context):
            return []
        for p in self._usage.get("positional", []):
            if p["kind"] != "raster_out":
                continue
            path = self.parameterAsOutputLayer(parameters, p["name"], context)
            ext = os.path.splitext(path)[1].lstrip(".")
            driver = QgsRasterFileWriter.driverForExtension(ext) if ext \
                else ""
            if driver and driver != (o.get("default") or "GTiff"):
                return _flag_words(o, driver)
        return []

    # Results -------------------------------------------------------------

    def _finish(self, program, out, parameters, context, feedback, results):
        cmd = self._command
        if cmd == "synth":
            folder = results["OUTDIR"]
            for name, filename, label in SYNTH_PRODUCTS:
                path = os.path.join(folder, filename)
                results[name] = path
                context.addLayerToLoadOnCompletion(
                    path, context.LayerDetails(
                        "synth " + filename[:-4], context.project(), name))
            results["SYNTH_JSON"] = os.path.join(folder, "synth.json")
        elif cmd == "train":
            info = runner.run(program, "info", ["--json", results["MODEL"]],
                              None, capture_stdout=True)
            figures = json.loads(info.stdout).get("metadata", {}).get(
                "figures", {})
            results["FIGURES"] = json.dumps(figures)
            r2 = figures.get("sample_r2", {})
            for m in ("optical", "sar"):
                fig = r2.get(m, {})
                results["R2_ALIGNED_" + m.upper()] = fig.get("aligned")
                results["LOSS_FRACTION_" + m.upper()] = fig.get(
                    "loss_fraction")
        elif cmd == "probe":
            try:
                report = json.loads(out.stdout)
            except ValueError as e:
                raise QgsProcessingException(
                    "mmcl probe printed no valid JSON: %s" % e)
            json_path = self.parameterAsFileOutput(parameters, "REPORT",
                                                   context)
            if json_path:
                with open(json_path, "w", encoding="utf-8") as f:
                    json.dump(report, f, indent=2)
                results["REPORT"] = json_path
            html_path = self.parameterAsFileOutput(parameters, "OUT", context)
            if html_path:
                with open(html_path, "w", encoding="utf-8") as f:
                    f.write(probe_html(report))
                results["OUT"] = html_path
            if results.get("MAP"):
                context.addLayerToLoadOnCompletion(
                    results["MAP"], context.LayerDetails(
                        "probe prediction", context.project(), "MAP"))
            gap = report.get("gap", {})
            results["GAP_OPTICAL"] = gap.get("optical")
            results["GAP_SAR"] = gap.get("sar")
            results["CHANCE"] = report.get("chance", 0.0)
            results["BASELINE_MACRO_F1"] = report.get("baseline", {}).get(
                "macro_f1", 0.0)
            for line in probe_text(report):
                feedback.pushInfo(line)
        elif cmd == "rgb":
            legend = os.path.splitext(results["OUT"])[0] + ".legend.png"
            results["LEGEND"] = legend if os.path.exists(legend) else None

    @staticmethod
    def _infoloss_figures(report, results):
        try:
            with open(report, encoding="utf-8") as f:
                figures = json.load(f)
        except (OSError, ValueError):
            return
        for m in ("optical", "sar"):
            fig = figures.get(m, {})
            results["LOSS_FRACTION_" + m.upper()] = fig.get("loss_fraction")
            results["MEAN_INFOLOSS_" + m.upper()] = fig.get("mean_infoloss")
            cv = fig.get("cross_validated")
            if cv is not None:  # an audit's report
                results["R2_ALIGNED_" + m.upper()] = cv.get("r2_aligned")


def _plain_files(value):
    """The paths in @p value when it holds only paths of existing files.

    These go to mmcl as they are: opening them as QGIS layers first would
    only cost time and leave statistics (.aux.xml) beside the inputs.
    Layers, layer ids and anything else return None and are resolved by
    QGIS.
    """
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(i, str) and os.path.isfile(i)
                            for i in items):
        return None
    return [os.path.abspath(i) for i in items]


def _show_error_once(message):
    """Before a failure is raised: in qgis_process, show it once.

    qgis_process prints every critical message of QGIS's log on stderr, and
    a raised error goes there twice (QGIS logs it, and its feedback logs it
    again), besides the feedback's own "ERROR:" line: three copies, or two
    with --json, which prints no "ERROR:" line. There the run ends with
    this error, so the log is silenced for the little that is left, and
    with --json the message is printed here instead. The desktop and
    PyQGIS scripts are left as they are.
    """
    if QgsApplication.platform() != "qgis_process":
        return
    if "--json" in QCoreApplication.arguments():
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    QgsApplication.messageLog().blockSignals(True)


def _choice_name(o, value):
    """The choice of enum option @p o that @p value names, by its name (any
    case) or its number; @p value itself when it names none."""
    choices = o["choices"]
    text = str(value).strip() if value is not None else ""
    if text.isdigit() and int(text) < len(choices):
        return choices[int(text)]
    for c in choices:
        if c.lower() == text.lower():
            return c
    return value


def _cannot_open(name, values):
    return "%s: cannot open %s as a raster (missing, or not a raster GDAL " \
        "reads)" % (name, ", ".join("'%s'" % v for v in values))


def _flag_words(o, value):
    """Command-line words that give option @p o the value @p value."""
    flags = o.get("flags", [])
    for f in flags:
        if f.get("takes_value"):
            return [f["flag"], value]
    for f in flags:
        if f.get("sets") == value:
            return [f["flag"]]
    if o["type"] == "bool" and value == "YES":
        for f in flags:
            if f.get("takes_value") is False and "sets" not in f:
                return [f["flag"]]
    raise QgsProcessingException(
        "option %s cannot be set to %s on the command line" %
        (o["name"], value))


def _probe_columns(report):
    """The figures of the probe table, by task: (key, heading) pairs."""
    if report.get("task") == "classes":
        return [("accuracy", "accuracy"),
                ("balanced_accuracy", "balanced accuracy"),
                ("macro_f1", "macro F1"), ("mean_iou", "mean IoU")]
    return [("r2", "R2"), ("rmse", "RMSE"), ("mae", "MAE")]


def _baseline_line(report):
    b = report.get("baseline", {})
    nan = float("nan")
    if report.get("task") == "classes":
        return ("baseline, always the majority class %s: accuracy %.4f, "
                "balanced accuracy %.4f, macro F1 %.4f, mean IoU %.4f" %
                (b.get("class"), b.get("accuracy", nan),
                 b.get("balanced_accuracy", nan), b.get("macro_f1", nan),
                 b.get("mean_iou", nan)))
    return ("baseline, always the mean: R2 %.4f, RMSE %.4g, MAE %.4g" %
            (b.get("r2", nan), b.get("rmse", nan), b.get("mae", nan)))


def probe_text(report):
    """The probe table as text lines, for the log."""
    cols = _probe_columns(report)
    lines = ["%-20s %5s  %s" % ("representation", "dim", "  ".join(
        "%10s" % h for _, h in cols))]
    for name, rep in report.get("representations", {}).items():
        lines.append("%-20s %5d  %s" % (name, rep.get("dim", 0), "  ".join(
            "%10.4f" % rep.get(k, float("nan")) for k, _ in cols)))
    lines.append(_baseline_line(report))
    gap = report.get("gap", {})
    lines.append("sigma-informativeness gap: optical %+.4f, sar %+.4f" %
                 (gap.get("optical", float("nan")),
                  gap.get("sar", float("nan"))))
    return lines


def probe_html(report):
    """The probe tables as an HTML page for the results viewer."""
    task = report.get("task", "classes")
    cols = _probe_columns(report)
    e = html.escape
    nan = float("nan")
    rows = []
    for name, rep in report.get("representations", {}).items():
        rows.append("<tr><td>%s</td><td>%d</td>%s</tr>" % (
            e(name), rep.get("dim", 0), "".join(
                "<td>%.4f</td>" % rep.get(k, nan) for k, _ in cols)))
    per_class = []
    if task == "classes":
        classes = report.get("classes", [])
        for name, rep in list(report.get("representations", {}).items()) + [
                ("majority baseline", report.get("baseline", {}))]:
            conf = rep.get("confusion", [])
            for i, pc in enumerate(rep.get("per_class", [])):
                counts = conf[i] if i < len(conf) else []
                per_class.append(
                    "<tr><td>%s</td><td>%g</td><td>%d</td>%s%s</tr>" % (
                        e(name) if i == 0 else "", pc.get("class", nan),
                        pc.get("support", 0), "".join(
                            "<td>%.4f</td>" % pc.get(k, nan)
                            for k in ("precision", "recall", "f1", "iou")),
                        "".join("<td>%d</td>" % c for c in counts)))
        per_class_table = (
            "<h3>Per class</h3><p>pred=c: the samples of the class "
            "predicted as c (the confusion matrix).</p>"
            "<table><tr><th>representation</th><th>class</th>"
            "<th>support</th><th>precision</th><th>recall</th><th>F1</th>"
            "<th>IoU</th>%s</tr>\n%s\n</table>" % (
                "".join("<th>pred=%g</th>" % c for c in classes),
                "\n".join(per_class)))
    else:
        per_class_table = ""
    gap = report.get("gap", {})
    facts = [("task", task), ("model", "%s (%s, k=%s, patch %s)" % (
        report.get("model_hash", "?"), report.get("objective", "?"),
        report.get("k", "?"), report.get("patch", "?"))),
        ("samples", report.get("samples")),
        ("spatial blocks", "%s x %s (%s folds)" % (
            report.get("blocks"), report.get("blocks"),
            report.get("folds")))]
    if task == "classes":
        facts.append(("largest class share", "%.4f" %
                      report.get("chance", nan)))
    return """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>mmcl probe</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}
td,th{border:1px solid #999;padding:2px 8px;text-align:right}
td:first-child{text-align:left}</style></head><body>
<h2>mmcl probe</h2>
<p>%s</p>
<table><tr><th>representation</th><th>dim</th>%s</tr>
%s
</table>
<p>%s.</p>
%s
<p>Sigma-informativeness gap (error of the aligned embedding minus error of
the raw modality): optical %+.4f, SAR %+.4f.</p>
</body></html>
""" % ("<br>".join("%s: %s" % (e(k), e(str(v))) for k, v in facts),
       "".join("<th>%s</th>" % e(h) for _, h in cols), "\n".join(rows),
       e(_baseline_line(report).capitalize()), per_class_table,
       gap.get("optical", nan), gap.get("sar", nan))
