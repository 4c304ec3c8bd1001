"""The zoo table, models/derain/RESULTS.md: every method and baseline on the same held-out pairs, with its size and
its speed, and the issue's targets checked against the numbers.

    /usr/bin/python3 -m models.derain.zoo --markdown models/derain/RESULTS.md

Reads, and never recomputes:
- models/derain/results_baselines.json (evaluate.py: input and the classical baselines);
- models/derain_*/results.json, one per model package (its evaluate hook: its own row, the same pairs, plus
  `params` and `macs_per_mp`); a package whose ONNX id is in models/manifest.json is served by enhance.derain;
- bench/results/derain.json (`npx tsx bench/derain.ts`: each served method through onnxruntime on this machine in
  one run: the 0.4 MP CLI call end to end and 12 MP in process), for the speed columns, so that methods are compared
  on one machine in one run rather than by their evaluations' PyTorch timings taken under different loads.
"""

import argparse
import glob
import json
import os

from . import data
from .evaluate import BASELINE_NOTES, SET_TITLES

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SETS = ("light", "heavy", "heldout")
TARGETS = {"light": 33.0, "heavy": 17.0, "heavy_best": 20.0, "cli_s": 2.0}


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def members() -> list[dict]:
    """One entry per model package: its name in the API (or its package name), row, size, and whether it is served."""
    served = {m["id"] for m in load(os.path.join(REPO, "models/manifest.json"))["models"]}
    baseline_rows = set(load(os.path.join(HERE, "results_baselines.json"))["methods"])
    out = []
    for path in sorted(glob.glob(os.path.join(REPO, "models/derain_*/results.json"))):
        r = load(path)
        own = [m for m in r["methods"] if m not in baseline_rows]
        if len(own) != 1:
            raise SystemExit(f"{path}: expected exactly one row besides the baselines, got {own}")
        name = own[0]
        model_id = "derain-" + name
        out.append({
            "name": name, "package": os.path.basename(os.path.dirname(path)), "row": r["methods"][name],
            "params": r.get("params"), "macs_per_mp": r.get("macs_per_mp"), "served": model_id in served,
        })
    return out


def cell(row: dict, s: str) -> str:
    return f"{row[s]['psnr']:.2f} dB / {row[s]['ssim']:.3f}" if s in row else ""


def table(baselines: dict, zoo: list[dict], bench: dict) -> list[str]:
    speed = bench.get("methods", {})
    lines = [
        "| method | kind | params | GMACs/MP | " + " | ".join(f"{SET_TITLES[s]} PSNR / SSIM" for s in SETS)
        + " | 0.4 MP via the CLI, wall / CPU | 12 MP in process, wall / CPU |",
        "|---" * (6 + len(SETS)) + "|",
    ]
    for name, row in baselines["methods"].items():
        lines.append(f"| {name} | baseline | | | " + " | ".join(cell(row, s) for s in SETS) + " | | |")
    for m in zoo:
        b = speed.get(m["name"], {})
        cli, big = b.get("cli_0_4mp"), b.get("12mp")
        lines.append(
            f"| **{m['name']}** | {'served' if m['served'] else 'baseline (not served)'} | {m['params']:,} | "
            f"{m['macs_per_mp'] / 1e9:.1f} | " + " | ".join(cell(m["row"], s) for s in SETS) + " | "
            + (f"{cli['median_wall_s']:.2f} s / {cli['median_cpu_s']:.2f} s" if cli else "")
            + " | " + (f"{big['pipeline_s']:.1f} s / {big['process_cpu_s']:.1f} s" if big else "") + " |"
        )
    return lines


def families(baselines: dict, zoo: list[dict]) -> list[str]:
    fams = baselines["heavy_families"]
    lines = ["| method | " + " | ".join(fams) + " |", "|---" * (len(fams) + 1) + "|"]
    rows = list(baselines["methods"].items()) + [(m["name"], m["row"]) for m in zoo]
    for name, row in rows:
        lines.append(f"| {name} | " + " | ".join(cell(row, f"heavy/{f}") for f in fams) + " |")
    return lines


def targets(baselines: dict, zoo: list[dict], bench: dict) -> list[str]:
    served = [m for m in zoo if m["served"]]
    inp = baselines["methods"]["input"]
    lines = ["| target | measured | met |", "|---|---|---|"]

    def row(target: str, measured: str, ok: bool) -> None:
        lines.append(f"| {target} | {measured} | {'yes' if ok else '**no**'} |")

    for m in served:
        r = m["row"]
        row(f"{m['name']}: heavy rain + veil >= {TARGETS['heavy']:.0f} dB", f"{r['heavy']['psnr']:.2f} dB",
            r["heavy"]["psnr"] >= TARGETS["heavy"])
        row(f"{m['name']}: light rain >= {TARGETS['light']:.0f} dB", f"{r['light']['psnr']:.2f} dB",
            r["light"]["psnr"] >= TARGETS["light"])
        row(f"{m['name']}: held-out family above the input ({inp['heldout']['psnr']:.2f} dB)",
            f"{r['heldout']['psnr']:.2f} dB", r["heldout"]["psnr"] > inp["heldout"]["psnr"])
        cli = bench.get("methods", {}).get(m["name"], {}).get("cli_0_4mp")
        if cli:
            row(f"{m['name']}: 0.4 MP end to end through the CLI <= {TARGETS['cli_s']:.0f} s",
                f"{cli['median_wall_s']:.2f} s wall, {cli['median_cpu_s']:.2f} s CPU (load {bench['methods'][m['name']].get('load_average_1m_at_start')})",
                cli["median_wall_s"] <= TARGETS["cli_s"])
    with open(os.path.join(REPO, "gpu-runner/src/operations/derain.ts")) as f:
        n = len(f.read().splitlines())
    row("the derain pipeline file <= 40 lines (gpu-runner/src/operations/derain.ts; each method's entry in "
        "operations/derain/)", f"{n} lines", n <= 40)
    if served:
        best = max(served, key=lambda m: m["row"]["heavy"]["psnr"])
        row(f"the best on heavy rain + veil >= {TARGETS['heavy_best']:.0f} dB",
            f"{best['name']}: {best['row']['heavy']['psnr']:.2f} dB", best["row"]["heavy"]["psnr"] >= TARGETS["heavy_best"])
    return lines


HEAD = """# Derain zoo: results

<!-- Generated by `/usr/bin/python3 -m models.derain.zoo --markdown models/derain/RESULTS.md`; edit zoo.py, not this. -->

Held-out evaluation (`models/derain/evaluate.py`): {photos} held-out photos of `models/data/` at a 640 px long side,
one rendering per photo and set ({pairs} pairs), rendered by `models/derain/prepare_data.py` (seeds in `data.py`).
PSNR on RGB in [0, 1]; SSIM on RGB (scikit-image defaults). The heavy set alternates the `heavy` (Li et al. 2019)
and `streak_vapor` (Wang et al. 2020) families by photo; the held-out family (`screen`, Luo et al. 2015 screen blend
under a veil, wind 32-50 deg from vertical) is never used in training. Every model was chosen on TRAIN renders only
(its card). Speed: `npx tsx bench/derain.ts` ({bench_at}; {cpu}), onnxruntime-node on the CPU, every served method in
the same run: the 0.4 MP column is the whole `npm run runner -- exec enhance.derain` process (start-up, model
hashing, session, decode, tiles, PNG encode), median of 3; the 12 MP column the tiled pipeline in process (2
intra-op threads). On a machine shared with other jobs, wall time measures the neighbours too; CPU time does not.

"""

TAIL = "\n" + BASELINE_NOTES + """
Regenerate:
1. `/usr/bin/python3 -m models.derain.prepare_data` (the pairs), then `/usr/bin/python3 -m models.derain.evaluate --out
   models/derain/results_baselines.json` (the baselines);
2. each model's evaluation (the command in its card) writes `models/derain_<name>/results.json`;
3. `npx tsx bench/derain.ts` (speed), `npx tsx models/derain/figure-zoo.ts` (the picture), then this table.
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", default=os.path.join(HERE, "RESULTS.md"))
    a = ap.parse_args(argv)
    baselines = load(os.path.join(HERE, "results_baselines.json"))
    bench_path = os.path.join(REPO, "bench/results/derain.json")
    bench = load(bench_path) if os.path.exists(bench_path) else {}
    zoo = members()
    text = HEAD.format(pairs=baselines["pairs"], photos=baselines["photos"], bench_at=bench.get("measured_at", "not run"),
                       cpu=bench.get("cpu", "?"))
    text += "\n".join(table(baselines, zoo, bench)) + "\n\nThe heavy set by family (PSNR / SSIM):\n\n"
    text += "\n".join(families(baselines, zoo)) + "\n\n## Issue 14's targets\n\n" + "\n".join(targets(baselines, zoo, bench))
    text += ("\n\nNo tile seams: each served method's test (test/runner/derain*.test.ts) runs the serving tiling against "
             "one whole-image pass along every tile border, on the graph's own grid, and on a size that is no multiple "
             "of the alignment.\n")
    if os.path.exists(os.path.join(HERE, "zoo.jpg")):
        text += "\n\n## Side by side\n\n![rainy input, each method with its maps, ground truth](zoo.jpg)\n\n" \
                "`npx tsx models/derain/figure-zoo.ts`: one held-out photo under each set, every served method through " \
                "the runner's pipeline with `maps=true` (transmission T, rain), and the ground truth.\n"
    text += TAIL
    with open(a.markdown, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
