"""Dataset adapters: image/label pairs from a root the user names, validated as they are read.

Every adapter yields `Sample(image, label, name)`: `image` uint8 HxWx3 RGB, `label` int64 HxW holding class
ids 0..num_classes-1 and `IGNORE` (255) for pixels no metric counts. Each adapter maps its dataset's own
label encoding onto that (CamVid's 11 -> ignore, Cityscapes labelIds -> train ids, ADE20K's reduced zero
label, VOC's 255 border, portrait masks -> {0 background, 1 person}), so metrics and training never see raw
ids.

Bad data fails with one `DataError` line naming the file: a missing folder or list, an unreadable or corrupt
file, an image and label of different sizes, a label value outside the dataset's id range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import UsageError

IGNORE = 255
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


class DataError(UsageError):
    """A dataset root or file that cannot be used; the message names the path."""


@dataclass
class Sample:
    image: np.ndarray  # uint8 HxWx3, RGB
    label: np.ndarray  # int64 HxW, class ids and IGNORE
    name: str


def read_image(path: Path) -> np.ndarray:
    """uint8 HxWx3 RGB pixels of an image file; a missing or corrupt file is a DataError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return np.array(im.convert("RGB"), dtype=np.uint8)  # a writable copy
    except FileNotFoundError:
        raise DataError(f"image file {path} does not exist") from None
    except Exception as exc:  # PIL raises several types for truncated/garbled files
        raise DataError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def read_label(path: Path) -> np.ndarray:
    """Raw single-channel label values (palette indices for palette PNGs, not colours)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I", "I;16"):
                im = im.convert("L")
            return np.asarray(im).astype(np.int64)
    except FileNotFoundError:
        raise DataError(f"label file {path} does not exist") from None
    except Exception as exc:
        raise DataError(f"cannot read label {path}: {type(exc).__name__}: {exc}") from None


def _need_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DataError(f"dataset folder {path} does not exist")
    return path


def _lut(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    """A lookup table raw id -> class id; -1 marks values the dataset never has (an error)."""
    table = np.full(size, -1, dtype=np.int64)
    for raw, cls in mapping.items():
        table[raw] = cls
    return table


class SegDataset:
    """A list of (image path, label path) pairs with the dataset's label mapping; indexable."""

    name = ""
    class_names: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    # Raw label value -> class id or IGNORE; values outside it are errors.
    label_lut: np.ndarray
    # Resize a label to its image (nearest) instead of failing on a size mismatch (documented per layout).
    resize_label_to_image = False

    def __init__(self, root: str | Path, split: str):
        self.root = Path(root)
        if split not in self.splits:
            raise DataError(f"{self.name}: unknown split {split!r} (one of {', '.join(self.splits)})")
        self.split = split
        _need_dir(self.root)
        self.items: list[tuple[Path, Path]] = self.find_pairs(split)
        if not self.items:
            raise DataError(f"{self.name}: no image/label pairs for split {split!r} under {self.root}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def find_pairs(self, split: str) -> list[tuple[Path, Path]]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.items)

    def map_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        bad = (raw < 0) | (raw >= len(self.label_lut))
        mapped = np.where(bad, -1, self.label_lut[np.clip(raw, 0, len(self.label_lut) - 1)])
        if (mapped < 0).any():
            values = sorted(set(np.unique(raw[mapped < 0]).tolist()))[:8]
            raise DataError(
                f"label {path}: value(s) {values} outside {self.name}'s label ids "
                f"({self.num_classes} classes{f', {IGNORE} ignored' if IGNORE in self.label_lut else ''})"
            )
        return mapped

    def __getitem__(self, index: int) -> Sample:
        image_path, label_path = self.items[index]
        image = read_image(image_path)
        raw = read_label(label_path)
        if raw.shape != image.shape[:2]:
            if not self.resize_label_to_image:
                raise DataError(
                    f"label {label_path} is {raw.shape[1]}x{raw.shape[0]} but image {image_path} is "
                    f"{image.shape[1]}x{image.shape[0]} (WxH)"
                )
            raw = _resize_nearest(raw, image.shape[:2])
        return Sample(image, self.map_label(raw, label_path), image_path.stem)


def _resize_nearest(label: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(label.astype(np.int32), mode="I").resize((hw[1], hw[0]), Image.NEAREST)
    return np.asarray(im).astype(np.int64)


def _pairs_from_list(list_file: Path, root: Path, strip: str = "") -> list[tuple[Path, Path]]:
    """Pairs from a text file of 'image label' lines, paths relative to root (a leading `strip` removed)."""
    if not list_file.is_file():
        raise DataError(f"split list {list_file} does not exist")
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{list_file}:{number}: expected 'image label', got {line!r}")
        pairs.append(tuple(root / p.removeprefix(strip).lstrip("/") for p in parts))
    return pairs


def _check_exist(pairs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    for image, label in pairs:
        for path in (image, label):
            if not path.is_file():
                raise DataError(f"dataset file {path} does not exist")
    return pairs


class CamVid(SegDataset):
    """SegNet's 11-class CamVid: train/val/test folders + *annot label folders; 11 (Unlabelled) ignored."""

    name = "camvid"
    class_names = (
        "Sky",
        "Building",
        "Pole",
        "Road",
        "Pavement",
        "Tree",
        "SignSymbol",
        "Fence",
        "Car",
        "Pedestrian",
        "Bicyclist",
    )
    splits = ("train", "val", "test", "trainval")
    label_lut = _lut({**{i: i for i in range(11)}, 11: IGNORE})

    def find_pairs(self, split):
        pairs = []
        for part in ("train", "val") if split == "trainval" else (split,):
            _need_dir(self.root / part)
            _need_dir(self.root / f"{part}annot")
            list_file = self.root / f"{part}.txt"
            if list_file.is_file():
                pairs += _pairs_from_list(list_file, self.root, strip="/SegNet/CamVid/")
            else:
                pairs += [
                    (p, self.root / f"{part}annot" / p.name) for p in sorted((self.root / part).glob("*.png"))
                ]
        return _check_exist(pairs)


# Cityscapes labelIds (0..33, -1 licence plate) -> the 19 train ids; every other id is ignored.
_CITYSCAPES_TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


class Cityscapes(SegDataset):
    """leftImg8bit/<split>/<city>/*_leftImg8bit.png with gtFine/<split>/<city>/*_gtFine_labelIds.png."""

    name = "cityscapes"
    class_names = (
        "road",
        "sidewalk",
        "building",
        "wall",
        "fence",
        "pole",
        "traffic light",
        "traffic sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    )
    splits = ("train", "val", "test")
    label_lut = _lut({i: _CITYSCAPES_TRAIN_IDS.get(i, IGNORE) for i in range(34)})

    def find_pairs(self, split):
        images = _need_dir(self.root / "leftImg8bit" / split)
        labels = _need_dir(self.root / "gtFine" / split)
        pairs = []
        for image in sorted(images.glob("*/*_leftImg8bit.png")):
            stem = image.name.removesuffix("_leftImg8bit.png")
            pairs.append((image, labels / image.parent.name / f"{stem}_gtFine_labelIds.png"))
        return _check_exist(pairs)


class ADE20K(SegDataset):
    """ADEChallengeData2016: images/{training,validation}/*.jpg, annotations/.../*.png; 0 (other) ignored
    and 1..150 reduced to 0..149 (mmsegmentation's reduce_zero_label)."""

    name = "ade20k"
    class_names = tuple(f"class{i}" for i in range(1, 151))  # SceneParse150 object names omitted for brevity
    splits = ("train", "val")
    label_lut = _lut({0: IGNORE, **{i: i - 1 for i in range(1, 151)}})

    def find_pairs(self, split):
        root = (
            self.root / "ADEChallengeData2016" if (self.root / "ADEChallengeData2016").is_dir() else self.root
        )
        folder = {"train": "training", "val": "validation"}[split]
        images = _need_dir(root / "images" / folder)
        labels = _need_dir(root / "annotations" / folder)
        return _check_exist([(p, labels / f"{p.stem}.png") for p in sorted(images.glob("*.jpg"))])


class VOC2012(SegDataset):
    """VOCdevkit/VOC2012: JPEGImages, SegmentationClass (palette PNG indices), ImageSets/Segmentation lists;
    21 classes with the 255 object border ignored."""

    name = "voc2012"
    class_names = (
        "background",
        "aeroplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
        "bus",
        "car",
        "cat",
        "chair",
        "cow",
        "diningtable",
        "dog",
        "horse",
        "motorbike",
        "person",
        "pottedplant",
        "sheep",
        "sofa",
        "train",
        "tvmonitor",
    )
    splits = ("train", "val", "trainval")
    label_lut = _lut({**{i: i for i in range(21)}, 255: IGNORE})

    def find_pairs(self, split):
        root = self.root
        for sub in ("VOCdevkit/VOC2012", "VOC2012"):
            if (self.root / sub).is_dir():
                root = self.root / sub
        images = _need_dir(root / "JPEGImages")
        labels = _need_dir(root / "SegmentationClass")
        list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            raise DataError(f"split list {list_file} does not exist")
        ids = [s.strip() for s in list_file.read_text().splitlines() if s.strip()]
        return _check_exist([(images / f"{i}.jpg", labels / f"{i}.png") for i in ids])


def _image_label_folders(images: Path, labels: Path, label_ext: str = ".png") -> list[tuple[Path, Path]]:
    pairs = []
    for image in sorted(p for p in images.iterdir() if p.suffix.lower() in _IMAGE_EXTS):
        pairs.append((image, labels / f"{image.stem}{label_ext}"))
    return _check_exist(pairs)


def _portrait_humanseg_mini(root: Path, split: str):
    if (root / "Training_Images").is_dir() and (root / "Ground_Truth").is_dir():
        return _image_label_folders(root / "Training_Images", root / "Ground_Truth"), True
    return None


def _portrait_pphumanseg14k(root: Path, split: str):
    # PP-HumanSeg14K: images/<split>/*.jpg, annotations/<split>/*.png (0/1), with <split>.txt lists.
    if (root / "images").is_dir() and (root / "annotations").is_dir():
        list_file = root / f"{split}.txt"
        if list_file.is_file():
            return _pairs_from_list(list_file, root), False
        return _image_label_folders(_need_dir(root / "images" / split), root / "annotations" / split), False
    return None


def _portrait_eg1800(root: Path, split: str):
    # EG1800 as PortraitNet/SINet distribute it: Images/*.png, Labels/*.png, eg1800_{train,test}.txt of names.
    if (root / "Images").is_dir() and (root / "Labels").is_dir():
        list_file = root / f"eg1800_{split}.txt"
        if list_file.is_file():
            names = [s.strip() for s in list_file.read_text().splitlines() if s.strip()]
            return _check_exist([(root / "Images" / n, root / "Labels" / n) for n in names]), False
        return _image_label_folders(root / "Images", root / "Labels"), False
    return None


def _portrait_supervisely(root: Path, split: str):
    # Supervise-Portrait / Supervisely Person exported with masks: <ds>/img/*, <ds>/masks_machine/*.png.
    datasets = sorted(p.parent for p in root.glob("*/img") if (p.parent / "masks_machine").is_dir())
    if (root / "img").is_dir() and (root / "masks_machine").is_dir():
        datasets = [root]
    if not datasets:
        return None
    pairs = []
    for ds in datasets:
        for image in sorted(p for p in (ds / "img").iterdir() if p.suffix.lower() in _IMAGE_EXTS):
            pairs.append((image, ds / "masks_machine" / f"{image.stem}.png"))
    return _check_exist(pairs), False


_PORTRAIT_LAYOUTS: dict[str, Callable] = {
    "humanseg_mini": _portrait_humanseg_mini,
    "PP-HumanSeg14K": _portrait_pphumanseg14k,
    "EG1800": _portrait_eg1800,
    "Supervise-Portrait": _portrait_supervisely,
}


class Portrait(SegDataset):
    """Images + binary person masks, in any of the layouts of `_PORTRAIT_LAYOUTS` (recognised by its folders).

    Masks are {0,1} or {0,255}: values > 127 (or exactly 1) are person, 0 background; anything else is an
    error. humanseg_mini's masks often differ in size from their image; its README says to resize them to
    the image (nearest), which this layout alone does.
    """

    name = "portrait"
    class_names = ("background", "person")
    splits = ("train", "val", "test", "all")
    label_lut = _lut({0: 0, 1: 1, **{v: 1 for v in range(128, 256)}})

    def find_pairs(self, split):
        for layout, find in _PORTRAIT_LAYOUTS.items():
            found = find(self.root, split)
            if found is not None:
                self.layout = layout
                pairs, self.resize_label_to_image = found
                return pairs
        raise DataError(
            f"portrait: {self.root} has none of the known layouts ({', '.join(_PORTRAIT_LAYOUTS)})"
        )

    def map_label(self, raw, path):
        if raw.max(initial=0) > 1:  # a 0/255 mask: threshold as the dataset notes say (mask > 127)
            bad = (raw > 1) & (raw < 128) | (raw > 255)
            if bad.any():
                values = sorted(set(np.unique(raw[bad]).tolist()))[:8]
                raise DataError(f"label {path}: value(s) {values} are neither background nor person")
            return (raw > 127).astype(np.int64)
        return super().map_label(raw, path)


DATASETS: dict[str, type[SegDataset]] = {d.name: d for d in (CamVid, Cityscapes, ADE20K, VOC2012, Portrait)}


def load_dataset(name: str, root: str | Path, split: str) -> SegDataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (one of {', '.join(DATASETS)})")
    return DATASETS[name](root, split)
