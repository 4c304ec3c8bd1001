"""Writes (or replaces) the lowlight-iagc entry of models/manifest.json, leaving every other entry untouched.

    /usr/bin/python3 -m models.lowlight.manifest_entry
"""

import hashlib
import json
import os

from .arch import THUMB
from .export import OPSET

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FILE = "lowlight/weights/lowlight-iagc.onnx"


def main() -> None:
    with open(os.path.join(ROOT, FILE), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    entry = {
        "id": "lowlight-iagc",
        "version": "1.1.0",
        "file": FILE,
        "sha256": sha,
        "opset": OPSET,
        "inputs": [
            {"name": "image", "shape": [1, 3, "height", "width"], "dtype": "float32", "range": [0, 1], "note": "one tile, RGB"},
            {"name": "thumb", "shape": [1, 3, THUMB, THUMB], "dtype": "float32", "range": [0, 1], "note": "area-resized whole photo"},
            {"name": "roi", "shape": [1, 4], "dtype": "float32", "note": "tile top, left, photo height, photo width (pixels)"},
        ],
        "outputs": [{"name": "enhanced", "shape": [1, 3, "height", "width"], "dtype": "float32", "range": [0, 1]}],
        "working_size": {"thumb": [THUMB, THUMB], "tile": "any (runner uses 1024 with 32 px overlap)"},
        "license": "Apache-2.0 (weights trained here on GPL-2+/CC-BY(-SA) Debian wallpaper photos; see CARD.md)",
        "card": "lowlight/CARD.md",
    }
    path = os.path.join(ROOT, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    models = [m for m in manifest["models"] if m.get("id") != entry["id"]]
    manifest["models"] = [*models, entry]
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps(entry))


if __name__ == "__main__":
    main()
