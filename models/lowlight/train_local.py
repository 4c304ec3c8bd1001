"""Minimal driver for the model-zoo hooks, used only until models/common/train.py lands.

    /usr/bin/python3 -m models.lowlight.train_local --config models/lowlight/config.json --out models/lowlight/runs/main
"""

import argparse
import json
import os
import random
import time

import numpy as np
import torch

from . import hooks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=1e9, help="wall-clock budget; stops early and saves")
    args = ap.parse_args()
    cfg = json.load(open(args.config))
    if args.steps:
        cfg["steps"] = args.steps
    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg["seed"]), np.random.seed(cfg["seed"]), random.seed(cfg["seed"])
    os.makedirs(args.out, exist_ok=True)
    model = hooks.build(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    it = hooks.make_batches(cfg, "train")
    t0 = time.time()
    log = open(os.path.join(args.out, "log.jsonl"), "a")
    for step in range(cfg["steps"]):
        # On a shared CPU the step rate is unknown in advance, so the schedule follows whichever of step count
        # and wall-clock budget runs out first; the cosine then always reaches lr_min.
        progress = max(step / cfg["steps"], (time.time() - t0) / (args.minutes * 60))
        for g in opt.param_groups:
            g["lr"] = hooks.lr_at(round(progress * cfg["steps"]), cfg)
        loss, logs = hooks.training_step(model, next(it), step, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % cfg["log_every"] == 0 or step == cfg["steps"] - 1:
            rec = {"step": step, "t": round(time.time() - t0, 1), "loss": loss.item(), "lr": opt.param_groups[0]["lr"], **logs}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        done = step == cfg["steps"] - 1 or time.time() - t0 > args.minutes * 60
        if step % cfg["ckpt_every"] == 0 or done:
            torch.save({"model": model.state_dict(), "step": step, "cfg": cfg}, os.path.join(args.out, "last.pt"))
        if done:
            break


if __name__ == "__main__":
    main()
