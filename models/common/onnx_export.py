"""ONNX export + manifest helpers shared by the zoo.

export_onnx() writes a graph (fixed shapes, or the dynamic axes given: restoration models take tiles of any
height and width, see spatial_axes()), checks it with onnx.checker, and returns the manifest entry fields, where
a dynamic axis appears by its name ("height"). Dynamic axes cannot reach adaptive pooling: its output size
would depend on the input size, which does not export; use fixed working sizes (a thumbnail) or plain pooling.
upsert_manifest() does a read-modify-write of a manifest touching only the given id.
"""

import hashlib
import json
import os

import onnx
import torch

from models.common.registry import REPO

MANIFEST = os.path.join(REPO, "models", "manifest.json")


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def spatial_axes(*names: str) -> dict:
    """dynamic_axes for NCHW tensors whose height and width vary (tiles and the outputs made from them)."""
    return {n: {2: "height", 3: "width"} for n in names}


def graph_io(values) -> list:
    """Manifest view of graph inputs or outputs: a fixed dim as its size, a dynamic one by its name."""

    def dim(d):
        return d.dim_param if d.dim_param else d.dim_value

    return [{"name": v.name, "shape": [dim(d) for d in v.type.tensor_type.shape.dim], "dtype": "float32"} for v in values]


def export_onnx(module: torch.nn.Module, example: tuple, path: str, input_names: list, output_names: list, opset: int = 17,
                dynamic_axes: dict | None = None) -> dict:
    module.eval()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module, example, path, input_names=input_names, output_names=output_names, opset_version=opset,
                          do_constant_folding=True, dynamic_axes=dynamic_axes)
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    return {"sha256": sha256_file(path), "opset": opset, "inputs": graph_io(graph.graph.input), "outputs": graph_io(graph.graph.output)}


def upsert_manifest(entry: dict, path: str = MANIFEST) -> None:
    """Replaces (or adds) the entry with entry["id"]; a missing manifest file starts empty."""
    manifest = {"version": 1, "models": []}
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
    models = [m for m in manifest.get("models", []) if m.get("id") != entry["id"]]
    models.append(entry)
    manifest["models"] = sorted(models, key=lambda m: m["id"])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
