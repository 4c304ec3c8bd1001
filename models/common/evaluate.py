"""The one evaluation entry: dispatches to the model package's evaluate(cfg, args) hook.

    /usr/bin/python3 models/common/evaluate.py --model watermark [--config ...] [model-specific args...]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from models.common.registry import REPO, load_hooks  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--config", help="default models/<model>/config.json")
    args, rest = ap.parse_known_args(argv)
    path = args.config or os.path.join(REPO, "models", args.model, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    sys.exit(load_hooks(args.model).evaluate(cfg, rest) or 0)


if __name__ == "__main__":
    main()
