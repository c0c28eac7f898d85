"""`wsss predict` on a folder of new images."""

import numpy as np
import pytest
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import load_mask, read_manifest
from wsss_stages.lib.nets.models import DeepLabV3Plus, TinyBackbone, model_meta
from wsss_stages.lib.nets.training import save_model
from wsss_stages.stages.predict import predict


@pytest.fixture
def model(tmp_path):
    net = DeepLabV3Plus(TinyBackbone(8), 3)
    path = tmp_path / "model.pt"
    save_model(
        path, net, model_meta("deeplabv3plus", "tiny", 8, 3, ["background", "a", "b"], mean=[0.5] * 3, std=[0.25] * 3)
    )
    return path


def test_predict_writes_a_mask_and_an_overlay_per_image(model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("cat", (40, 56)), ("dog", (33, 30))):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{name}.jpg")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "masks"
    predict(model=model, images=folder, out_dir=out, overlays=True, threads=1)
    assert load_mask(out / "cat.png").shape == (40, 56) and load_mask(out / "dog.png").shape == (33, 30)
    assert load_mask(out / "cat.png").max() <= 2 and Image.open(out / "dog_overlay.jpg").size == (30, 33)
    assert read_manifest(out, "masks")["ids"] == ["cat", "dog"]


def test_predict_names_an_empty_or_missing_folder(model, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WsssError, match="holds no image"):
        predict(model=model, images=tmp_path / "empty", out_dir=tmp_path / "out")
    with pytest.raises(WsssError, match="not a folder"):
        predict(model=model, images=tmp_path / "nowhere", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
