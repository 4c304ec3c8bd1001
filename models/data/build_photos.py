"""Builds the shared photo corpus from Debian and npm packages, offline-reproducibly.

Photos come only from packages: Debian wallpaper packages (`apt-get download` + `dpkg -x`), the
scikit-image and scikit-learn sample images installed with Debian's python3-skimage / python3-sklearn,
and the face-api demo photos in node_modules. Each listed file was checked by eye to be a photograph;
abstract, vector and painted wallpapers shipped next to them are not listed.

Files are copied byte for byte (full resolution, original codec) to models/data/photos/ (git-ignored).
The committed split models/data/splits.json maps file name + sha256 to "train" or "heldout"; the split
is by photo, so held-out photos are different photos, never crops of training ones.

    /usr/bin/python3 models/data/build_photos.py [--check]

--check only verifies that the files on disk match the committed split (sha256).
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, "photos")
SPLITS = os.path.join(HERE, "splits.json")
REPO = os.path.dirname(os.path.dirname(HERE))
SEED = 20261126
TRAIN_FRACTION = 0.4  # small train share: the evaluation needs many distinct held-out photos

# (package, license) for every Debian package used, as stated in its debian/copyright.
PACKAGES = {
    "lomiri-wallpapers-16.04": "CC-BY-SA-3.0 / CC-BY-SA-4.0 / CC-BY-4.0 (per photo, debian/copyright)",
    "lomiri-wallpapers-20.04": "CC-BY-SA-3.0 / CC-BY-SA-4.0 / CC-BY-4.0 (per photo, debian/copyright)",
    "mate-backgrounds": "GPL-2+",
    "plasma-workspace-wallpapers": "LGPL-3 / GPL-2+ / CC-BY-SA (per wallpaper)",
}
LOMIRI = [
    "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Infinite-Sea_by_Aury88", "Kleiber_by_Lukas_Baubkus",
    "Picture_0B_by_freespace", "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
    "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "life_by_Aitzol_Berasategi",
    "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
]
MATE_NATURE = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
               "TwoWings", "Wood", "YellowFlower"]
PLASMA = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
          "MilkyWay", "OneStandsOut", "Path", "summer_1am"]
# scikit-image sample photographs (BSD-3 / public domain per skimage/data/README.txt); greyscale ones included.
SKIMAGE = ["astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
           "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg"]
SKLEARN = ["china.jpg", "flower.jpg"]  # CC-BY 2.0 (sklearn/datasets/images/README.txt)
FACE_API = [f"sample{i}.jpg" for i in range(1, 7)]  # @vladmandic/face-api demo photos (MIT package)


def fetch_debs(tmp: str) -> str:
    root = os.path.join(tmp, "root")
    for pkg in sorted(PACKAGES):
        subprocess.run(["apt-get", "download", pkg], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    for deb in sorted(f for f in os.listdir(tmp) if f.endswith(".deb")):
        subprocess.run(["dpkg", "-x", os.path.join(tmp, deb), root], check=True)
    return root


def largest(d: str) -> str:
    files = sorted(os.listdir(d))
    return os.path.join(d, max(files, key=lambda f: os.path.getsize(os.path.join(d, f))))


def sources(root: str) -> list[tuple[str, str]]:
    bg = os.path.join(root, "usr/share/backgrounds")
    out = [(f"lomiri_{n}.jpg", os.path.join(bg, n + ".jpg")) for n in LOMIRI]
    out += [(f"mate_{n}.jpg", os.path.join(bg, "mate/nature", n + ".jpg")) for n in MATE_NATURE]
    for n in PLASMA:
        src = largest(os.path.join(root, "usr/share/wallpapers", n, "contents/images"))
        out.append((f"plasma_{n}{os.path.splitext(src)[1]}", src))
    out += [(f"skimage_{n}", os.path.join("/usr/lib/python3/dist-packages/skimage/data", n)) for n in SKIMAGE]
    out += [(f"sklearn_{n}", os.path.join("/usr/lib/python3/dist-packages/sklearn/datasets/images", n)) for n in SKLEARN]
    out += [(f"faceapi_{n}", os.path.join(REPO, "node_modules/@vladmandic/face-api/demo", n)) for n in FACE_API]
    return out


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def split(names: list[str]) -> dict[str, str]:
    order = sorted(names)
    random.Random(SEED).shuffle(order)
    n_train = round(len(order) * TRAIN_FRACTION)
    return {n: ("train" if i < n_train else "heldout") for i, n in enumerate(order)}


def build() -> dict:
    os.makedirs(PHOTOS, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = fetch_debs(tmp)
        entries = []
        for name, src in sources(root):
            dst = os.path.join(PHOTOS, name)
            shutil.copyfile(src, dst)
            entries.append({"file": name, "sha256": sha256(dst), "source": os.path.relpath(src, root) if src.startswith(root) else src})
    assign = split([e["file"] for e in entries])
    for e in entries:
        e["split"] = assign[e["file"]]
    entries.sort(key=lambda e: e["file"])
    return {"seed": SEED, "packages": PACKAGES, "photos": entries}


def check() -> int:
    with open(SPLITS) as f:
        data = json.load(f)
    bad = [e["file"] for e in data["photos"] if not os.path.exists(os.path.join(PHOTOS, e["file"]))
           or sha256(os.path.join(PHOTOS, e["file"])) != e["sha256"]]
    print(f"{len(data['photos']) - len(bad)}/{len(data['photos'])} photos match splits.json", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    if ap.parse_args().check:
        sys.exit(check())
    data = build()
    with open(SPLITS, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    counts = {s: sum(e["split"] == s for e in data["photos"]) for s in ("train", "heldout")}
    print(f"wrote {len(data['photos'])} photos to {PHOTOS}: {counts}")
