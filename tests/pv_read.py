"""Run by ParaView's pvbatch from tests/test_paraview.py: open an XDMF file
with ParaView's own reader and print what it sees, one JSON line."""

import json
import sys

from paraview.simple import Xdmf3ReaderS

reader = Xdmf3ReaderS(FileName=[sys.argv[1]])
reader.UpdatePipeline()
info = reader.GetDataInformation()
print(
    "PVRESULT "
    + json.dumps(
        {
            "cells": info.GetNumberOfCells(),
            "points": info.GetNumberOfPoints(),
            "bounds": list(info.GetBounds()),
            "ranges": {name: list(reader.CellData[name].GetRange()) for name in reader.CellData.keys()},
            "tuples": {name: reader.CellData[name].GetNumberOfTuples() for name in reader.CellData.keys()},
        }
    )
)
