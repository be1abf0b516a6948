"""``python -m mtl_model inspect|verify FILE [--json]``: a convenience for notebooks and
scripts; the Swift `mtl-model` stays the tool. Exit codes as the Swift tool's: 0 valid,
1 invalid (verify), 2 unreadable or a usage error."""
import argparse
import datetime
import json
import os
import sys

from . import load
from ._errors import MTLModelError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mtl_model", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("inspect", "format, provenance, metadata, config and tensors"),
                       ("verify", "every checksum, the structure, NaN / Inf, distinct keys")):
        command = commands.add_parser(name, help=text)
        command.add_argument("file")
        command.add_argument("--json", action="store_true", help="one JSON object on stdout")
    arguments = parser.parse_args(argv)
    try:
        model = load(arguments.file)
    except MTLModelError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    try:
        with model:
            return inspect(model, arguments.json) if arguments.command == "inspect" else verify(model, arguments.json)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def inspect(model, as_json):
    tensors = [{"name": t.name, "dtype": t.dtype.name, "shape": list(t.shape), "role": t.role, "bytes": t.nbytes,
                "storedBytes": t.stored_bytes, "compression": t.compression} for t in model.tensors.values()]
    if as_json:
        print(json.dumps({"file": model.path, "formatVersion": model.version, "form": model.form,
                          "provenance": model.provenance, "metadata": model.metadata, "config": model.config,
                          "tensors": tensors}, indent=2))
        return 0
    p = model.provenance
    created = datetime.datetime.fromtimestamp(p["created_unix_seconds"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print("file      %s (%d bytes)\nformat    %s\nproducer  %s %s, created %s\nsource    %s\nform      %s"
          % (model.path, model.file_bytes, model.version, p["producer"], p["producer_version"], created, p["source"], model.form))
    for key, value in model.metadata.items():
        print("metadata  %s = %s" % (key, value))
    width = max([len(t["name"]) for t in tensors] + [4])
    print("\n%-*s  %-14s %-16s %-14s %s" % (width, "name", "dtype", "shape", "role", "bytes"))
    for t in tensors:
        print("%-*s  %-14s %-16s %-14s %d%s" % (width, t["name"], t["dtype"], t["shape"], t["role"], t["bytes"],
                                                "" if t["compression"] == "none" else " (zlib: %d)" % t["storedBytes"]))
    return 0


def verify(model, as_json):
    report = model.verify()
    if as_json:
        print(json.dumps({"file": model.path, "formatVersion": model.version, "tensorCount": report.tensor_count,
                          "checkedByteCount": report.checked_bytes, "valid": report.valid,
                          "problems": [p.as_dict() for p in report.problems]}, indent=2))
    elif report.valid:
        print("%s: valid (format %s, %d tensors, %d payload bytes checked)" % (model.path, model.version, report.tensor_count,
                                                                             report.checked_bytes))
    else:
        for problem in report.problems:
            print("%s: %s: %s" % (model.path, problem.kind, problem))
        print("%s: INVALID: %d problem%s" % (model.path, len(report.problems), "s" * (len(report.problems) > 1)))
    return 0 if report.valid else 1


if __name__ == "__main__":
    sys.exit(main())
