"""Builds the low-light photo cache from Debian packages (offline-reproducible).

Stand-in for the shared models/data/ builder until it lands: same rules (photos only, fetched with
`apt-get download` + `dpkg -x`, deterministic split of different photos). Photos are stored downscaled
to a 1024 px long side in models/lowlight/data/photos/ (git-ignored); the split is committed in
models/lowlight/splits.json.

    /usr/bin/python3 models/lowlight/prepare_data.py
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import cv2

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "photos")
PACKAGES = ["lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "mate-backgrounds", "plasma-workspace-wallpapers"]
# Hand-checked photographs (abstract / vector / painted wallpapers in the same packages are excluded).
BACKGROUNDS = [
    "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Infinite-Sea_by_Aury88.jpg", "Kleiber_by_Lukas_Baubkus.jpg",
    "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg",
    "aitzgorri_by_Aitzol_Berasategi.jpg", "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg",
    "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "seeding_by_Clements_Engelhardt.jpg",
    "sunset_by_Aitzol_Berasategi.jpg",
]
MATE_NATURE = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
               "TwoWings", "Wood", "YellowFlower"]
PLASMA = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Kite", "MilkyWay",
          "OneStandsOut", "Path", "summer_1am"]
SKIMAGE = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
SKLEARN = ["china.jpg", "flower.jpg"]
LONG_SIDE = 1024
HELDOUT_EVERY = 5  # every 5th photo in sha256 order is held out


def sources(root: str) -> list[tuple[str, str]]:
    bg = os.path.join(root, "usr/share/backgrounds")
    out = [(f"lomiri_{n}", os.path.join(bg, n)) for n in BACKGROUNDS]
    out += [(f"mate_{n}.jpg", os.path.join(bg, "mate/nature", n + ".jpg")) for n in MATE_NATURE]
    for n in PLASMA:
        d = os.path.join(root, "usr/share/wallpapers", n, "contents/images")
        biggest = max(os.listdir(d), key=lambda f: os.path.getsize(os.path.join(d, f)))
        out.append((f"plasma_{n}{os.path.splitext(biggest)[1]}", os.path.join(d, biggest)))
    out += [(f"skimage_{n}", os.path.join("/usr/lib/python3/dist-packages/skimage/data", n)) for n in SKIMAGE]
    out += [(f"sklearn_{n}", os.path.join("/usr/lib/python3/dist-packages/sklearn/datasets/images", n)) for n in SKLEARN]
    return out


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=tmp, check=True)
    for deb in sorted(f for f in os.listdir(tmp) if f.endswith(".deb")):
        subprocess.run(["dpkg", "-x", deb, "x"], cwd=tmp, check=True)
    entries = []
    for name, path in sources(os.path.join(tmp, "x")):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {path}")
        h, w = img.shape[:2]
        s = LONG_SIDE / max(h, w)
        if s < 1:
            img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        out_name = os.path.splitext(name)[0] + ".png"
        cv2.imwrite(os.path.join(OUT, out_name), img)
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        entries.append({"file": out_name, "source": path.replace(os.path.join(tmp, "x"), ""), "sha256": sha})
    entries.sort(key=lambda e: e["sha256"])
    for i, e in enumerate(entries):
        e["split"] = "heldout" if i % HELDOUT_EVERY == 0 else "train"
    entries.sort(key=lambda e: e["file"])
    with open(os.path.join(HERE, "splits.json"), "w") as f:
        json.dump({"long_side": LONG_SIDE, "packages": PACKAGES, "photos": entries}, f, indent=1)
    shutil.rmtree(tmp)
    print(len(entries), "photos,", sum(e["split"] == "heldout" for e in entries), "held out")


if __name__ == "__main__":
    main()
