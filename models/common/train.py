"""The one training loop shared by every model in the zoo.

    /usr/bin/python3 models/common/train.py --model watermark --config models/watermark/config.json \
        [--steps N] [--minutes M] [--threads N] [--out DIR] [--resume CKPT]

Seeds everything, picks cuda when present (else cpu), runs Adam over the model package's hooks,
logs JSON lines, checkpoints (last.pt every ckpt_every steps; with snapshot_every, also a kept
snap-<step>.pt), and calls the package's export hook at the end. The schedule runs on
progress = max(step / steps, elapsed / minutes) so a time-boxed CPU run still anneals fully.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from models.common.registry import load_hooks  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, help="overrides config.steps")
    ap.add_argument("--minutes", type=float, help="wall-clock budget; overrides config.minutes")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (other jobs may share the CPU)")
    ap.add_argument("--out", help="run directory (default models/<model>/runs/<timestamp>)")
    ap.add_argument("--resume", help="checkpoint to continue from")
    ap.add_argument("--seed", type=int)
    return ap.parse_args(argv)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(cfg: dict, progress: float) -> float:
    base = cfg.get("lr", 1e-3)
    warm = cfg.get("warmup", 0.0)
    if progress < warm:
        return base * max(progress / warm, 0.05)
    if cfg.get("lr_schedule") == "cosine":
        t = (progress - warm) / max(1e-9, 1 - warm)
        return base * (cfg.get("lr_min_ratio", 0.05) + (1 - cfg.get("lr_min_ratio", 0.05)) * 0.5 * (1 + math.cos(math.pi * min(t, 1))))
    return base


def save(path: str, model, opt, step: int, cfg: dict) -> None:
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "cfg": cfg}, tmp)
    os.replace(tmp, path)


def main(argv=None) -> None:
    args = parse_args(argv)
    with open(args.config) as f:
        cfg = json.load(f)
    if args.steps:
        cfg["steps"] = args.steps
    if args.minutes:
        cfg["minutes"] = args.minutes
    if args.seed is not None:
        cfg["seed"] = args.seed
    torch.set_num_threads(args.threads)
    seed_all(cfg.get("seed", 0))
    cfg["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.config)), "runs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    hooks = load_hooks(args.model)

    model = hooks.build(cfg).to(cfg["device"])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.get("lr", 1e-3))
    start = 0
    if args.resume:
        ck = torch.load(args.resume, map_location=cfg["device"])
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start = ck["step"]
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)

    steps, minutes = cfg.get("steps", 1000), cfg.get("minutes")
    batches = hooks.make_batches(cfg, "train")
    log = open(os.path.join(out, "log.jsonl"), "a")
    t0 = time.time()
    step = start
    model.train()
    while step < steps:
        elapsed = time.time() - t0
        progress = max(step / steps, elapsed / (minutes * 60) if minutes else 0.0)
        if progress >= 1:
            break
        cfg["progress"] = progress  # hooks may anneal their own terms on it
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, progress)
        loss, logs = hooks.training_step(model, next(batches), step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = None
        if cfg.get("grad_clip"):
            gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"]))
        opt.step()
        step += 1
        if step % cfg.get("log_every", 50) == 0 or step == 1:
            rec = {"step": step, "t": round(time.time() - t0, 1), "lr": opt.param_groups[0]["lr"], "loss": float(loss)}
            if gnorm is not None:
                rec["grad_norm"] = round(gnorm, 4)  # before the clip: how often and how hard it bites
            rec.update({k: round(float(v), 5) for k, v in logs.items()})
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if step % cfg.get("ckpt_every", 500) == 0:
            save(os.path.join(out, "last.pt"), model, opt, step, cfg)
        if cfg.get("snapshot_every") and step % cfg["snapshot_every"] == 0:
            # Kept, not overwritten, so that a checkpoint can be chosen afterwards on validation data.
            save(os.path.join(out, f"snap-{step:06d}.pt"), model, opt, step, cfg)
    save(os.path.join(out, "last.pt"), model, opt, step, cfg)
    model.eval()
    hooks.export(model, out, cfg)
    print(json.dumps({"done": step, "minutes": round((time.time() - t0) / 60, 2), "out": out}), flush=True)


if __name__ == "__main__":
    main()
