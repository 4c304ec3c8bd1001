"""ONNX export + manifest helpers shared by the zoo.

export_onnx() writes a fixed-shape graph (working sizes are fixed: dynamic-size adaptive pooling does
not export), checks it with onnx.checker, and returns the manifest entry fields; upsert_manifest()
does a quick read-modify-write of models/manifest.json touching only the given id.
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


def export_onnx(module: torch.nn.Module, example: tuple, path: str, input_names: list, output_names: list, opset: int = 17) -> dict:
    module.eval()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module, example, path, input_names=input_names, output_names=output_names, opset_version=opset,
                          do_constant_folding=True)
    graph = onnx.load(path)
    onnx.checker.check_model(graph)

    def io(values):
        return [{"name": v.name, "shape": [d.dim_value for d in v.type.tensor_type.shape.dim], "dtype": "float32"} for v in values]

    return {"sha256": sha256_file(path), "opset": opset, "inputs": io(graph.graph.input), "outputs": io(graph.graph.output)}


def upsert_manifest(entry: dict) -> None:
    with open(MANIFEST) as f:
        manifest = json.load(f)
    models = [m for m in manifest.get("models", []) if m.get("id") != entry["id"]]
    models.append(entry)
    manifest["models"] = sorted(models, key=lambda m: m["id"])
    tmp = MANIFEST + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(tmp, MANIFEST)
