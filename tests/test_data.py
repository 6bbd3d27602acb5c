"""MNIST loading, its errors, the tensor loader and the batched augmentation."""
import gzip

import pytest
import torch

import utils


def test_loader_yields_normalised_batches_of_the_right_shape(mnist):
    train_x, train_y, _, _ = mnist
    loader = utils.Loader(train_x, train_y, batch_size=1000)
    assert len(loader) == 60
    x, y = next(iter(loader))
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (1000,) and y.dtype == torch.int64
    whole = torch.cat([x for x, _ in loader])
    assert abs(whole.mean().item()) < 1e-3 and abs(whole.std().item() - 1) < 1e-3


def test_loader_covers_every_image_once_per_epoch_and_reshuffles(mnist):
    train_x, train_y, _, _ = mnist
    loader = utils.Loader(train_x[:1000], train_y[:1000], batch_size=300, shuffle=True, seed=3)
    assert len(loader) == 4
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert len(first) == 1000
    assert torch.equal(first.sort().values, train_y[:1000].sort().values)
    assert not torch.equal(first, second)


def test_same_seed_gives_the_same_batches(mnist):
    train_x, train_y, _, _ = mnist
    make = lambda: utils.Loader(train_x[:512], train_y[:512], 128, shuffle=True, degrees=7, seed=5)
    for (xa, ya), (xb, yb) in zip(make(), make()):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_augmentation_keeps_labels_and_shape_and_changes_pixels(mnist):
    train_x, train_y, _, _ = mnist
    plain = utils.Loader(train_x[:256], train_y[:256], 256)
    rotated = utils.Loader(train_x[:256], train_y[:256], 256, degrees=7, translate=0.05)
    (x0, y0), (x1, y1) = next(iter(plain)), next(iter(rotated))
    assert x1.shape == x0.shape and torch.equal(y0, y1)
    assert not torch.allclose(x0, x1)
    # a rotation of at most 7 degrees moves ink, it does not erase it
    ink = lambda x: (x * utils.STD + utils.MEAN).sum((1, 2, 3))
    assert torch.allclose(ink(x1), ink(x0), rtol=0.1)


def test_zero_degrees_is_the_identity():
    x = torch.rand(8, 1, 28, 28)
    assert torch.allclose(utils.random_affine(x, degrees=0.0), x, atol=1e-5)


def test_rotation_angle_stays_within_the_range():
    # a single bright pixel 10 px right of centre moves along a circle by at most 7 degrees
    x = torch.zeros(64, 1, 29, 29)
    x[:, 0, 14, 24] = 1.0
    out = utils.random_affine(x, degrees=7.0, generator=torch.Generator().manual_seed(0))
    ys, xs = torch.meshgrid(torch.arange(29.0), torch.arange(29.0), indexing="ij")
    w = out[:, 0] / out[:, 0].sum((1, 2), keepdim=True)
    cy, cx = (w * ys).sum((1, 2)) - 14, (w * xs).sum((1, 2)) - 14
    angles = torch.rad2deg(torch.atan2(cy, cx)).abs()
    assert angles.max() <= 7.5 and angles.max() > 3


def test_zoom_stays_within_its_range_and_is_drawn_only_when_asked_for():
    # a single bright pixel 10 px right of centre moves to 10 * zoom px, zoom in [0.9, 1.1]
    x = torch.zeros(64, 1, 29, 29)
    x[:, 0, 14, 24] = 1.0
    out = utils.random_affine(x, degrees=0.0, scale=0.1, generator=torch.Generator().manual_seed(0))
    xs = torch.arange(29.0)
    w = out[:, 0].sum(1) / out[:, 0].sum((1, 2))[:, None]
    r = (w * xs).sum(1) - 14
    assert r.min() >= 8.9 and r.max() <= 11.1 and r.max() - r.min() > 1.0
    # without a zoom the generator gives what it gave before zooms existed: three numbers per image
    gen = torch.Generator().manual_seed(0)
    utils.random_affine(x, degrees=7.0, translate=0.05, generator=gen)
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(0).get_state()) is False
    twin = torch.Generator().manual_seed(0)
    torch.rand(64, 3, generator=twin)
    assert torch.equal(gen.get_state(), twin.get_state())


def test_gzipped_idx_files_are_read_like_plain_ones(tmp_path):
    plain = utils.read_idx(utils.data_dir(), "train-labels-idx1-ubyte")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(plain.numpy().tobytes()))
    assert torch.equal(utils.read_idx(tmp_path, "train-labels-idx1-ubyte"), plain)


def test_train_subset_keeps_the_first_n_images():
    train, test = utils.mnist_loaders(train_subset=300, batch_size=100)
    assert len(train.labels) == 300 and len(train) == 3
    assert len(test.labels) == 10000


def test_data_dir_prefers_argument_then_environment_then_data(monkeypatch, tmp_path):
    monkeypatch.setenv(utils.DATA_ENV, str(tmp_path))
    assert utils.data_dir("elsewhere") == utils.Path("elsewhere")
    assert utils.data_dir() == tmp_path
    monkeypatch.delenv(utils.DATA_ENV)
    assert utils.data_dir() == utils.Path("data")


def test_missing_data_names_the_folder_the_variable_and_the_files(tmp_path):
    with pytest.raises(utils.MNISTNotFoundError) as err:
        utils.load_mnist(tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in message and utils.DATA_ENV in message
    for name in utils.MNIST_FILES:
        assert name in message


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    class Offline:
        def __init__(self, root, train=True, download=False):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(utils, "MNIST", Offline)
    with pytest.raises(utils.MNISTNotFoundError, match="downloading it failed") as err:
        utils.load_mnist(tmp_path, download=True)
    assert utils.DATA_ENV in str(err.value)


def write_idx_files(raw, truncate=None):
    raw.mkdir(parents=True)
    for name, (magic, size) in utils.MNIST_FILES.items():
        body = magic.to_bytes(4, "big") + bytes(size - 4)
        (raw / name).write_bytes(body[:-100] if name == truncate else body)


def test_truncated_idx_file_is_reported_with_its_sizes(tmp_path):
    write_idx_files(tmp_path / "MNIST" / "raw", truncate="t10k-images-idx3-ubyte")
    with pytest.raises(utils.MNISTCorruptError, match="t10k-images-idx3-ubyte is damaged") as err:
        utils.load_mnist(tmp_path, download=False)
    assert "7840016 bytes" in str(err.value) and "7839916 bytes" in str(err.value)


def test_bad_batch_size_is_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        utils.Loader(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), 0)


def test_holdout_evaluates_on_the_last_training_images_and_trains_on_the_rest(mnist):
    train_x, train_y, _, _ = mnist
    train, held = utils.mnist_loaders(holdout=10000)
    assert len(train.labels) == 50000 and len(held.labels) == 10000
    assert torch.equal(held.images, train_x[-10000:]) and torch.equal(train.labels, train_y[:50000])


@pytest.mark.parametrize("holdout", [-1, 60000])
def test_holdout_out_of_range_is_a_clear_error(holdout):
    with pytest.raises(ValueError, match="holdout must be between 0 and 59999"):
        utils.mnist_loaders(holdout=holdout)
