"""Builds the shared photo corpus from Debian and npm packages, offline-reproducibly.

Photos come only from packages: Debian wallpaper packages and other Debian packages that ship sample
or documentation photographs (`apt-get download` + `dpkg -x`: OpenCV's samples and tutorial images,
jigsaw-puzzle games, matplotlib's sample data, darktable/digiKam/GIMP/Hugin data), the scikit-image
and scikit-learn sample images installed with Debian's python3-skimage / python3-sklearn, and the
face-api demo photos in node_modules. Each listed file was checked by eye to be a photograph (shorter
side >= 256 px) and a different photo from every other listed file; abstract, vector, rendered and
painted images, screenshots, annotated or processed tutorial outputs, and second crops, resolutions or
stereo/sequence partners of a listed scene shipped next to them are not listed.

Files are copied byte for byte (full resolution, original codec) to models/data/photos/ (git-ignored).
The committed split models/data/splits.json maps file name + sha256 to "train" or "heldout"; the split
is by photo, so held-out photos are different photos, never crops of training ones. The first 60 photos
(ORIGINAL sources below) were split by a seeded shuffle (24 train / 36 held-out) and a model was trained
on that train split; every photo added later is held-out, and the build refuses to change the split or
sha256 of any photo already in splits.json.

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
    # Added later (all held-out):
    "darktable": "GPL-3+",
    "digikam-data": "GPL-2+",
    "gimp-data": "GPL-3+ (Files: *)",
    "hugin-data": "GPL-2+ (Files: *)",
    "opencv-doc": "Apache-2.0 AND BSD-3-Clause (Files: *; Debian removed the Lena images)",
    "palapeli-data": "GPL-2+ (Files: *)",
    "puzzle-jigsaw": "CC0-1.0 (samples/*, photos from Pexels)",
    "python-matplotlib-data": "matplotlib license (PSF-based, BSD compatible)",
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

# ---- Added later: every photo below is held-out (see split()). ----
# Two more lomiri-wallpapers-16.04 photographs (a macro of a textured surface, a wall clock). The rest of
# the lomiri packages is abstract/painted (umang, Fossa, Painting-Colors; the unversioned lomiri-wallpapers
# ships only lomiri-default-background.png and warty-final-ubuntu.png, both abstract, no photo).
LOMIRI_ADDED = ["analogpattern_by_Peter_Nerlich", "greentock_by_Peter_Nerlich"]
# OpenCV sample data (opencv-doc, usr/share/doc/opencv-doc/examples). One photo per scene: not aero3,
# aloeR, basketball2, ela_modified, graf3, leuvenB, right*, rubberwhale2 (stereo/sequence/edited partners),
# only left06 of the 13 chessboard-calibration shots; not Blender_Suzanne* (renders), starry_night
# (painting), ml, cards, pic*, chessboard, digits, detect_blob, fuzzy/input (drawings/synthetic),
# text_defocus, text_motion, licenseplate_motion (deblurring inputs), ximgproc/stanford (screenshot).
OPENCV_SAMPLES = [
    "alphamat/input_images/plant.jpg", "data/aero1.jpg", "data/aloeL.jpg", "data/apple.jpg", "data/baboon.jpg",
    "data/basketball1.png", "data/blox.jpg", "data/board.jpg", "data/box_in_scene.png", "data/building.jpg",
    "data/butterfly.jpg", "data/chicky_512.png", "data/ela_original.jpg", "data/fruits.jpg", "data/graf1.png",
    "data/home.jpg", "data/left.jpg", "data/left06.jpg", "data/leuvenA.jpg", "data/messi5.jpg", "data/orange.jpg",
    "data/pca_test1.jpg", "data/rubberwhale1.png", "data/smarties.png", "data/squirrel_cls.jpg", "data/stuff.jpg",
    "data/sudoku.png", "dnn_superres/butterfly.png", "reg/home.png",
    "text/scenetext01.jpg", "text/scenetext02.jpg", "text/scenetext03.jpg", "text/scenetext04.jpg",
    "text/scenetext05.jpg", "text/scenetext06.jpg", "text/scenetext_segmented_word01.jpg",
    "text/scenetext_segmented_word02.jpg", "text/scenetext_segmented_word03.jpg",
    "text/scenetext_segmented_word04.jpg", "text/scenetext_segmented_word05.jpg",
]
# Unedited input photos among the OpenCV tutorial images (opencv-doc, usr/share/doc/opencv-doc/opencv4/html).
# Most other images there are annotated results, screenshots, plots or copies of the samples above.
OPENCV_DOCS = [
    "227943776_1.jpg", "230501201_1.jpg", "4_barcodes.jpg", "Background_Subtraction_Tutorial_frame.jpg",
    "Threshold_inRange_Tutorial_Result_input.jpeg", "astra_color.jpg", "choriginal.jpg", "handSrc.jpg",
    "newspaper.jpg", "pattern_img.jpg", "pexels_double_decker_bus.jpg", "retina_TreeHdr_small.jpg", "sample.jpg",
    "singlemarkersoriginal.jpg", "space_shuttle.jpg", "studentsSample_input.jpg",
]
# Jigsaw-puzzle photos (palapeli-data's puzzle collection, puzzle-jigsaw's Pexels samples).
PALAPELI = ["castle-maintenon.jpg", "cincinnati-bridge.jpg", "citrus-fruits.jpg", "european-honey-bee.jpg",
            "panther-chameleon-female.jpg"]
PUZZLE_JIGSAW = ["cat-animal-cat-portrait-mackerel.jpg", "pexels-photo-302304.jpeg"]
# Hugin's help images: one photo per scene, not the projection variants with grid overlays (Big_ben_*,
# Vertical-*, the second Medinet_habu), magnified crops (CA_fringes01, CA_strange*, CA_tCA01-03,
# Aliasing*), the labelled Pantheon comparison, or screenshots.
HUGIN = ["800px-C_Marchi-GrandCentral-adj.jpg", "CA_fringes00.jpg", "CA_tCA00.jpg",
         "Medinet_habu_horizontal_fisheye.jpg"]
# Single photographs in other packages: (file name, path inside the extracted packages).
OTHER_ADDED = [
    ("matplotlib_grace_hopper.jpg", "usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg"),  # public-domain US Navy portrait
    ("darktable_image-1.jpg", "usr/share/darktable/style/image-1.jpg"),  # style preview photo (hosta leaves)
    ("digikam_body-background.jpg", "usr/share/digikam/about/images/body-background.jpg"),  # lake landscape, 4032x3024
    ("gimp_beavis.jpg", "usr/share/gimp/2.0/scripts/images/beavis.jpg"),  # greyscale kitten photo
]


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
    return original_sources(root) + added_sources(root)


def original_sources(root: str) -> list[tuple[str, str]]:
    """The first 60 photos: the seeded train/heldout split applies to these only."""
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


def added_sources(root: str) -> list[tuple[str, str]]:
    """Photos added after the first split: all held-out."""
    out = [(f"lomiri_{n}.jpg", os.path.join(root, "usr/share/backgrounds", n + ".jpg")) for n in LOMIRI_ADDED]
    cv = os.path.join(root, "usr/share/doc/opencv-doc")
    out += [("opencv_" + n.replace("/", "_"), os.path.join(cv, "examples", n)) for n in OPENCV_SAMPLES]
    out += [(f"opencv_doc_{n}", os.path.join(cv, "opencv4/html", n)) for n in OPENCV_DOCS]
    out += [(f"palapeli_{n}", os.path.join(root, "usr/share/palapeli/collection", n)) for n in PALAPELI]
    out += [(f"puzzlejigsaw_{n}", os.path.join(root, "usr/share/puzzle-jigsaw/samples", n)) for n in PUZZLE_JIGSAW]
    out += [(f"hugin_{n}", os.path.join(root, "usr/share/hugin/xrc/data/help_en_EN", n)) for n in HUGIN]
    out += [(name, os.path.join(root, rel)) for name, rel in OTHER_ADDED]
    return out


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def split(names: list[str]) -> dict[str, str]:
    """Seeded split of the ORIGINAL photos only (a model was trained on its train part): never call it
    with added photos, since any new name would reshuffle the assignment."""
    order = sorted(names)
    random.Random(SEED).shuffle(order)
    n_train = round(len(order) * TRAIN_FRACTION)
    return {n: ("train" if i < n_train else "heldout") for i, n in enumerate(order)}


def keep_committed(entries: list[dict]) -> None:
    """Every photo already in the committed splits.json must keep its sha256 and split."""
    if not os.path.exists(SPLITS):
        return
    with open(SPLITS) as f:
        old = {e["file"]: e for e in json.load(f)["photos"]}
    new = {e["file"]: e for e in entries}
    bad = [n for n, e in old.items() if n not in new or new[n]["sha256"] != e["sha256"] or new[n]["split"] != e["split"]]
    if bad:
        sys.exit(f"refusing to write: these committed photos would change file, sha256 or split: {bad}")


def build() -> dict:
    os.makedirs(PHOTOS, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = fetch_debs(tmp)
        original, added = original_sources(root), added_sources(root)
        names = [n for n, _ in original + added]
        if len(set(names)) != len(names):
            sys.exit("duplicate file names in the source lists")
        entries = []
        for name, src in original + added:
            dst = os.path.join(PHOTOS, name)
            shutil.copyfile(src, dst)
            entries.append({"file": name, "sha256": sha256(dst), "source": os.path.relpath(src, root) if src.startswith(root) else src})
    assign = split([n for n, _ in original])
    for e in entries:
        e["split"] = assign.get(e["file"], "heldout")  # every added photo is held-out
    entries.sort(key=lambda e: e["file"])
    keep_committed(entries)
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
