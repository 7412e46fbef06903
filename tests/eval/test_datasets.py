"""Dataset adapters on the real files in ../shared/data, on format fixtures made in tmp_path for the layouts
not shipped there, and every bad-data case (each must fail with one message naming the file)."""

import numpy as np
import pytest
from PIL import Image

from bench.eval.datasets import IGNORE, DataError, load_dataset
from tests.conftest import SHARED

DATA = SHARED / "data"


def _png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode).save(path)
    return path


def _rgb(h=6, w=8, value=100):
    return np.full((h, w, 3), value, dtype=np.uint8)


# ------------------------------------------------------------------------------------------ real files


@pytest.mark.data
def test_camvid_real_files():
    ds = load_dataset("camvid", DATA / "camvid", "test")
    assert len(ds) == 233 and ds.num_classes == 11
    assert len(load_dataset("camvid", DATA / "camvid", "trainval")) == 367 + 101
    s = ds[0]
    assert s.image.shape == (360, 480, 3) and s.image.dtype == np.uint8
    values = set(np.unique(s.label).tolist())
    assert values <= set(range(11)) | {IGNORE}
    raw = np.asarray(Image.open(DATA / "camvid" / "testannot" / f"{s.name}.png"))
    assert ((raw == 11) == (s.label == IGNORE)).all()  # Unlabelled -> ignore, nothing else


@pytest.mark.data
def test_cityscapes_real_fixture_maps_label_ids_to_train_ids():
    root = DATA / "cityscapes_mini"
    ds = load_dataset("cityscapes", root, "val")
    assert len(ds) == 1 and ds.num_classes == 19
    s = ds[0]
    ref = np.asarray(Image.open(next((root / "gtFine/val/frankfurt").glob("*_labelTrainIds.png")))).astype(
        int
    )
    raw = np.asarray(Image.open(next((root / "gtFine/val/frankfurt").glob("*_labelIds.png")))).astype(int)
    assert s.label.shape == s.image.shape[:2]
    # The fixture's two label files were downscaled separately and disagree on ~0.3% of edge pixels; for
    # every labelId present, our train id is the one the official labelTrainIds file mostly gives it.
    assert (s.label == ref).mean() > 0.99
    for label_id in np.unique(raw):
        values, counts = np.unique(ref[raw == label_id], return_counts=True)
        assert np.unique(s.label[raw == label_id]).tolist() == [values[counts.argmax()]], label_id


@pytest.mark.data
def test_portrait_humanseg_mini_real_files():
    ds = load_dataset("portrait", DATA / "humanseg_mini", "all")
    assert ds.layout == "humanseg_mini" and len(ds) == 290 and ds.num_classes == 2
    for i in range(3):
        s = ds[i]
        assert s.label.shape == s.image.shape[:2]  # masks of another size are resized to the image
        assert set(np.unique(s.label).tolist()) <= {0, 1}
        assert s.label.any()


# ------------------------------------------------------------------- layouts made as format fixtures


def test_ade20k_reduces_zero_label(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    (root / "images/validation").mkdir(parents=True)
    Image.fromarray(_rgb()).save(root / "images/validation/a.jpg")
    label = np.zeros((6, 8))
    label[0, 0] = 1
    label[1, 1] = 150
    _png(root / "annotations/validation/a.png", label)
    s = load_dataset("ade20k", tmp_path, "val")[0]
    assert s.label[0, 0] == 0 and s.label[1, 1] == 149 and s.label[2, 2] == IGNORE


def test_voc2012_keeps_21_classes_and_ignores_border(tmp_path):
    root = tmp_path / "VOCdevkit/VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    Image.fromarray(_rgb(3, 8)).save(root / "JPEGImages/x.jpg")
    indices = np.array([[0, 0, 15, 15, 255, 255, 20, 20]] * 3, dtype=np.uint8)
    (root / "SegmentationClass").mkdir()
    label = Image.frombytes("P", (8, 3), indices.tobytes())
    label.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])  # a full palette, as VOC's
    label.save(root / "SegmentationClass/x.png")
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "ImageSets/Segmentation/val.txt").write_text("x\n")
    s = load_dataset("voc2012", tmp_path, "val")[0]
    assert s.label[0].tolist() == [0, 0, 15, 15, IGNORE, IGNORE, 20, 20]


@pytest.mark.parametrize("layout", ["EG1800", "PP-HumanSeg14K", "Supervise-Portrait"])
def test_portrait_layouts_are_recognised(tmp_path, layout):
    mask = np.zeros((6, 8))
    mask[2:, 3:] = 1
    if layout == "EG1800":
        _png(tmp_path / "Images/00001.png", _rgb())
        _png(tmp_path / "Labels/00001.png", mask)
        (tmp_path / "eg1800_test.txt").write_text("00001.png\n")
    elif layout == "PP-HumanSeg14K":
        _png(tmp_path / "images/val/a.png", _rgb())
        _png(tmp_path / "annotations/val/a.png", mask)
        (tmp_path / "val.txt").write_text("images/val/a.png annotations/val/a.png\n")
    else:
        _png(tmp_path / "ds1/img/a.png", _rgb())
        _png(tmp_path / "ds1/masks_machine/a.png", mask * 255)
    ds = load_dataset("portrait", tmp_path, "val" if layout == "PP-HumanSeg14K" else "test")
    assert ds.layout == layout
    assert (ds[0].label == mask).all()


# --------------------------------------------------------------------------------------- bad data


def _camvid(tmp_path, label=None, image=None):
    _png(tmp_path / "test/a.png", _rgb() if image is None else image)
    _png(tmp_path / "testannot/a.png", np.zeros((6, 8)) if label is None else label)
    return tmp_path


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="dataset folder .*nowhere does not exist"):
        load_dataset("camvid", tmp_path / "nowhere", "test")
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match="testannot does not exist"):
        load_dataset("camvid", tmp_path, "test")


def test_missing_label_file_is_named(tmp_path):
    _camvid(tmp_path)
    _png(tmp_path / "test/b.png", _rgb())
    with pytest.raises(DataError, match=r"testannot/b\.png does not exist"):
        load_dataset("camvid", tmp_path, "test")


def test_size_mismatch_names_both_files(tmp_path):
    ds = load_dataset("camvid", _camvid(tmp_path, label=np.zeros((5, 8))), "test")
    with pytest.raises(DataError, match=r"label .*testannot/a\.png is 8x5 but image .*test/a\.png is 8x6"):
        ds[0]


def test_label_out_of_range_names_file_and_values(tmp_path):
    label = np.zeros((6, 8))
    label[0, 0] = 12
    label[1, 1] = 200
    ds = load_dataset("camvid", _camvid(tmp_path, label=label), "test")
    with pytest.raises(DataError, match=r"testannot/a\.png: value\(s\) \[12, 200\] outside camvid"):
        ds[0]


def test_portrait_mask_with_stray_values_is_an_error(tmp_path):
    mask = np.zeros((6, 8))
    mask[0, 0] = 255
    mask[1, 1] = 60
    _png(tmp_path / "Training_Images/1.jpg", _rgb())
    _png(tmp_path / "Ground_Truth/1.png", mask)
    with pytest.raises(DataError, match=r"Ground_Truth/1\.png: value\(s\) \[60\]"):
        load_dataset("portrait", tmp_path, "all")[0]


@pytest.mark.parametrize("which", ["image", "label"])
def test_corrupt_file_is_named(tmp_path, which):
    _camvid(tmp_path)
    bad = tmp_path / ("test/a.png" if which == "image" else "testannot/a.png")
    bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    ds = load_dataset("camvid", tmp_path, "test")
    with pytest.raises(DataError, match=f"cannot read {which} .*{bad.parent.name}/a\\.png"):
        ds[0]


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'kitti'"):
        load_dataset("kitti", tmp_path, "val")
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_dataset("camvid", tmp_path, "dev")
