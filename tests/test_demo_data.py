import hashlib

import numpy as np

from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.stages.make_demo_data import CLASSES, make_demo_data, render_image


def _digest(folder):
    h = hashlib.sha1()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_generator_is_deterministic_and_reads_as_voc(tmp_path):
    make_demo_data(out_dir=tmp_path / "a", num_train=12, num_seed_eval=4, num_val=4, image_size=64, seed=3)
    make_demo_data(out_dir=tmp_path / "b", num_train=12, num_seed_eval=4, num_val=4, image_size=64, seed=3)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    make_demo_data(out_dir=tmp_path / "c", num_train=12, num_seed_eval=4, num_val=4, image_size=64, seed=4)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    ds = VOCDataset(tmp_path / "a")
    assert ds.class_names == CLASSES
    assert len(ds.split_ids("train_aug")) == 12 and ds.split_ids("train") == ds.split_ids("train_aug")[:4]
    for image_id in ds.split_ids("val"):
        mask = ds.load_mask(image_id)
        present = set(np.unique(mask[(mask > 0) & (mask < 255)]).tolist())
        assert present == set(ds.labels(image_id).tolist())


def test_images_pose_the_wsss_problem():
    n_objects, boat_on_water, other_on_water, boats, others = [], 0, 0, 0, 0
    for index in range(120):
        image, mask, saliency, names = render_image(index, "train", 96, 0)
        assert image.shape == (96, 96, 3) and mask.shape == (96, 96) and saliency.shape == (96, 96)
        assert (mask == 255).any() or not names  # VOC-like void borders around objects
        n_objects.append(len(names))
        water = image[..., 2].mean() > image[..., 1].mean() + 30 and image[..., 2].mean() > 120
        if "boat" in names:
            boats += 1
            boat_on_water += water
        else:
            others += 1
            other_on_water += water
    assert max(n_objects) <= 3 and len(set(n_objects)) >= 3
    assert boat_on_water / boats > 0.5 > other_on_water / others  # boat co-occurs with water
