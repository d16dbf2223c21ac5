"""Run by ParaView's pvbatch from tests/test_paraview.py: open an XDMF file
(or several) with ParaView's own reader ("Xdmf3 Reader (T)", the one README
names) and print what it sees, one JSON line per file: per block (grid) its cells, points, bounds,
and every cell, point and field array with its components, tuples and range
per component."""

import json
import sys

import numpy as np
from paraview import servermanager
from paraview.simple import Xdmf3ReaderT
from vtkmodules.util.numpy_support import vtk_to_numpy


def arrays(data):
    out = {}
    for i in range(data.GetNumberOfArrays()):
        a = data.GetArray(i)
        if a is None or a.GetName().startswith("vtkOriginal"):
            continue
        n = a.GetNumberOfComponents()
        out[a.GetName()] = {
            "components": n,
            "tuples": a.GetNumberOfTuples(),
            "type": a.GetDataTypeAsString(),
            "ranges": [list(a.GetRange(c)) for c in range(n)],
        }
    return out


def cell_bounds(obj):
    """Bounds of the points the cells use (GetBounds covers every point)."""
    pts = vtk_to_numpy(obj.GetPoints().GetData())
    used = pts[np.unique(vtk_to_numpy(obj.GetCells().GetConnectivityArray()))]
    return [float(v) for axis in range(3) for v in (used[:, axis].min(), used[:, axis].max())]


def blocks(obj, name, out):
    if obj.IsA("vtkMultiBlockDataSet"):
        for i in range(obj.GetNumberOfBlocks()):
            meta = obj.GetMetaData(i) if obj.HasMetaData(i) else None
            child = meta.Get(obj.NAME()) if meta is not None else f"{name}/{i}"
            blocks(obj.GetBlock(i), child, out)
        return
    out[name] = {
        "class": obj.GetClassName(),
        "cells": obj.GetNumberOfCells(),
        "points": obj.GetNumberOfPoints(),
        "bounds": list(obj.GetBounds()),
        "cell_bounds": cell_bounds(obj),
        "cell_types": sorted({obj.GetCellType(c) for c in range(obj.GetNumberOfCells())}),
        "cell": arrays(obj.GetCellData()),
        "point": arrays(obj.GetPointData()),
        "field": {
            obj.GetFieldData().GetArray(i).GetName(): obj.GetFieldData().GetArray(i).GetTuple1(0)
            for i in range(obj.GetFieldData().GetNumberOfArrays())
        },
    }


for path in sys.argv[1:]:  # one result line per file, in order
    reader = Xdmf3ReaderT(FileName=[path])
    reader.UpdatePipeline()
    seen = {}
    blocks(servermanager.Fetch(reader), "", seen)
    print("PVRESULT " + json.dumps(seen), flush=True)
