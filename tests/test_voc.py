import numpy as np
import pytest
from conftest import write_voc_tree
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import save_mask
from wsss_stages.lib.data.voc import VOC_CLASSES, VOCDataset


def test_reads_splits_labels_and_masks(voc_tree):
    ds = VOCDataset(voc_tree)
    assert ds.class_names == VOC_CLASSES
    assert ds.split_ids("train") == ["a", "b", "c"]
    assert ds.labels("a").tolist() == [VOC_CLASSES.index("cat")]
    vec = ds.label_vector("b")
    assert vec.shape == (20,) and vec[VOC_CLASSES.index("dog") - 1] == 1 and vec.sum() == 1
    mask = ds.load_mask("a")
    assert mask.shape == (24, 32) and set(np.unique(mask)) == {0, VOC_CLASSES.index("cat")}
    assert ds.load_image("a").shape == (24, 32, 3)


def test_classes_txt_overrides_voc_classes(tmp_path):
    root = write_voc_tree(tmp_path / "r", {"train": ["x"]}, classes_txt=["background", "boat", "kite"])
    ds = VOCDataset(root)
    assert ds.num_classes == 3 and ds.labels("x").tolist() == [1]


def test_missing_data_root_names_the_key(tmp_path):
    with pytest.raises(WsssError, match="data_root"):
        VOCDataset(tmp_path / "nowhere")


def test_split_id_without_image_names_the_split_file(voc_tree):
    (voc_tree / "ImageSets/Segmentation/bad.txt").write_text("a\nghost\n")
    with pytest.raises(WsssError, match=r"bad\.txt.*ghost"):
        VOCDataset(voc_tree).split_ids("bad")


def test_mask_of_wrong_size_names_the_mask(voc_tree):
    save_mask(voc_tree / "SegmentationClass" / "a.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(WsssError, match=r"SegmentationClass/a\.png"):
        VOCDataset(voc_tree).load_mask("a")


def test_unknown_class_in_xml_names_file_and_class(voc_tree):
    (voc_tree / "Annotations" / "a.xml").write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(WsssError, match=r"a\.xml.*unicorn"):
        VOCDataset(voc_tree).labels("a")


def test_labels_fall_back_to_mask_without_xml(voc_tree):
    (voc_tree / "Annotations" / "a.xml").unlink()
    assert VOCDataset(voc_tree).labels("a").tolist() == [VOC_CLASSES.index("cat")]


def test_image_without_labels_is_left_out_and_logged(voc_tree, caplog):
    import logging

    from wsss_stages.lib.data.voc import split_labelled

    (voc_tree / "Annotations" / "b.xml").write_text("<annotation></annotation>")
    ds = VOCDataset(voc_tree)
    kept = split_labelled(ds, ds.split_ids("train"), logging.getLogger("t"))
    assert kept == ["a", "c"]
    assert "left out 1 image" in caplog.text


def test_mask_with_out_of_range_value(voc_tree):
    Image.fromarray(np.full((24, 32), 77, np.uint8), mode="L").save(voc_tree / "SegmentationClass" / "a.png")
    with pytest.raises(WsssError, match="outside"):
        VOCDataset(voc_tree).load_mask("a")
