"""Model registry: model name -> the Python package that provides its hooks.

Each package exposes build(cfg), make_batches(cfg, split), training_step(model, batch, step, cfg),
export(model, out_dir, cfg) and evaluate(cfg, args). Adding a model = one line here.
"""

import importlib
import os
import sys

MODELS = {
    "watermark": "models.watermark.hooks",
    "lowlight": "models.lowlight.hooks",
    "derain_streak_vapor": "models.derain_streak_vapor.hooks",
    "derain_unet": "models.derain_unet.hooks",
    "derain_heavy_two_branch": "models.derain_heavy_two_branch.hooks",
}

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_hooks(name: str):
    if name not in MODELS:
        raise SystemExit(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    # Packages import each other as models.<name>.*, so the repo root must be importable.
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    return importlib.import_module(MODELS[name])
