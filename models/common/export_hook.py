"""The one export hook of the zoo: a trained module -> its ONNX file, its models/manifest.json entry and its
PyTorch parity fixture, written together so the three always describe the same graph.

A model package describes its export once, as an ExportSpec (models/lowlight/hooks.py: export_spec), and its
export(model, out_dir, cfg) hook is a call of export_model(). Where the files go:
- out_dir given (the end of a training run, models/common/train.py): everything is staged under it, laid out as
  in the repository (<out_dir>/<spec.file>, <out_dir>/manifest.json, <out_dir>/<id>-parity/), and nothing
  shipped changes;
- out_dir None (publishing): models/<spec.file>, models/manifest.json and test/fixtures/<id>-parity/.

    /usr/bin/python3 -m models.common.export_hook --model lowlight --ckpt models/lowlight/runs/main/last.pt [--out DIR]

The fixture holds every input as <name>.f32 and every output as <name>.f32 (little-endian float32, C order) and
meta.json with their dims, the ONNX file's sha256 and the torch version; test/runner/parity.ts runs the ONNX
file on the inputs with onnxruntime-node and compares. Debian has no onnxruntime for Python, so the parity is
checked from Node; when onnxruntime is importable the export also checks it here and records the difference.
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from models.common.onnx_export import export_onnx, sha256_file, upsert_manifest  # noqa: E402
from models.common.registry import REPO, load_hooks  # noqa: E402

MODELS_DIR = os.path.join(REPO, "models")
FIXTURES_DIR = os.path.join(REPO, "test", "fixtures")


@dataclass
class ExportSpec:
    id: str
    version: str
    # Path of the ONNX file relative to the models directory (lowlight/weights/lowlight-iagc.onnx).
    file: str
    # Example inputs for tracing, by feed name, in the order of the module's forward() arguments.
    example: dict
    outputs: list
    # Axes that vary, as torch.onnx.export's dynamic_axes (onnx_export.spatial_axes for tiles).
    dynamic_axes: dict = field(default_factory=dict)
    # Extra manifest fields per input/output name (range, note), merged into what the graph says.
    io: dict = field(default_factory=dict)
    # Further manifest fields: working_size, license, card.
    entry: dict = field(default_factory=dict)
    # Builds the parity fixture: (inputs by feed name, extra meta fields); None: no fixture.
    fixture: Callable[[], tuple] | None = None
    # Raises when the exported graph breaks a promise the model makes (lowlight: no Pow node).
    check: Callable[[onnx.ModelProto], None] | None = None
    opset: int = 17
    # Largest |PyTorch - onnxruntime| the parity test accepts.
    tolerance: float = 1e-4


def _write_f32(path: str, t: torch.Tensor) -> list:
    arr = t.detach().cpu().numpy().astype("<f4")
    arr.tofile(path)
    return list(arr.shape)


def pretty_json(value, indent: str = "") -> str:
    """JSON laid out as the repository's formatter (prettier) leaves it: objects one key a line, flat arrays inline."""
    if isinstance(value, dict) and value:
        inner = indent + "  "
        return "{\n" + ",\n".join(f"{inner}{json.dumps(k)}: {pretty_json(v, inner)}" for k, v in value.items()) + f"\n{indent}}}"
    return json.dumps(value)


def write_fixture(module: torch.nn.Module, spec: ExportSpec, onnx_path: str, out: str) -> dict:
    feeds, extra = spec.fixture()
    module.eval()
    with torch.no_grad():
        result = module(*(feeds[n] for n in spec.example))
    results = result if isinstance(result, (tuple, list)) else (result,)
    os.makedirs(out, exist_ok=True)
    meta = {
        "model": spec.id,
        "inputs": {n: _write_f32(os.path.join(out, f"{n}.f32"), feeds[n]) for n in spec.example},
        "outputs": {n: _write_f32(os.path.join(out, f"{n}.f32"), r) for n, r in zip(spec.outputs, results)},
        "tolerance": spec.tolerance,
        "onnx_sha256": sha256_file(onnx_path),
        "torch": torch.__version__,
        **extra,
    }
    try:
        import onnxruntime  # noqa: F401  (absent from Debian; the Node parity test is the check that always runs)
    except ImportError:
        pass
    else:
        sess = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        got = sess.run(spec.outputs, {n: feeds[n].numpy() for n in spec.example})
        diff = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, results))
        assert diff <= spec.tolerance, f"{spec.id}: onnxruntime differs from PyTorch by {diff}"
        meta["python_onnxruntime_max_abs_diff"] = diff
    with open(os.path.join(out, "meta.json"), "w") as f:
        f.write(pretty_json(meta) + "\n")
    return meta


def manifest_entry(spec: ExportSpec, exported: dict) -> dict:
    def merge(values):
        return [{**v, **spec.io.get(v["name"], {})} for v in values]

    return {
        "id": spec.id,
        "version": spec.version,
        "file": spec.file,
        "sha256": exported["sha256"],
        "opset": exported["opset"],
        "inputs": merge(exported["inputs"]),
        "outputs": merge(exported["outputs"]),
        **spec.entry,
    }


def export_model(module: torch.nn.Module, spec: ExportSpec, out_dir: str | None = None) -> dict:
    """Writes the ONNX file, the manifest entry and (when the spec has one) the parity fixture; returns the entry."""
    models_dir = out_dir or MODELS_DIR
    manifest = os.path.join(out_dir, "manifest.json") if out_dir else os.path.join(MODELS_DIR, "manifest.json")
    fixture_dir = os.path.join(out_dir or FIXTURES_DIR, f"{spec.id}-parity")
    path = os.path.join(models_dir, spec.file)
    module = module.cpu().eval()
    exported = export_onnx(module, tuple(spec.example.values()), path, list(spec.example), spec.outputs, spec.opset,
                           spec.dynamic_axes or None)
    if spec.check:
        spec.check(onnx.load(path))
    entry = manifest_entry(spec, exported)
    upsert_manifest(entry, manifest)
    if spec.fixture:
        write_fixture(module, spec, path, fixture_dir)
    return entry


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a name in models/common/registry.py")
    ap.add_argument("--ckpt", required=True, help="checkpoint written by models/common/train.py")
    ap.add_argument("--out", help="stage under this directory instead of publishing into models/ and test/fixtures/")
    args = ap.parse_args(argv)
    hooks = load_hooks(args.model)
    ck = torch.load(args.ckpt, map_location="cpu")
    model = hooks.build(ck["cfg"])
    model.load_state_dict(ck["model"])
    torch.set_num_threads(1)
    print(json.dumps(hooks.export(model, args.out, ck["cfg"]), indent=1))


if __name__ == "__main__":
    main()
