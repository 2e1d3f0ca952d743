import numpy as np
import pytest

from dmlviz.data import ArrayDataset, coarsen, digits, load_dataset, mnist5k, pairs, split_dataset, synthetic


def test_digits_is_offline_images():
    ds = digits()
    assert len(ds) == 1797 and ds.num_classes == 10
    assert ds.input_shape == (1, 8, 8)
    x, y = ds[0]
    assert x.shape == (1, 8, 8) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    thumbs = ds.thumbnails([0, 5])
    assert thumbs.dtype == np.uint8 and thumbs.shape == (2, 8, 8)


def test_mnist5k_and_pairs_preset():
    ds = load_dataset("mnist5k-pairs")
    assert len(ds) == 5000 and ds.num_classes == 5 and ds.input_shape == (1, 28, 28)
    assert ds.class_names == ["0|5", "1|6", "2|7", "3|8", "4|9"]
    # class c holds digits c and c+5, the digit is kept as the hidden fine label
    assert set(np.unique(ds.fine_labels[ds.labels == 2])) == {2, 7}
    np.testing.assert_array_equal(ds.labels, ds.fine_labels % 5)
    assert ds.thumbnails([0]).shape == (1, 28, 28)


def test_synthetic_modes_are_fine_labels():
    ds = synthetic(classes=3, modes_per_class=4, dim=8, samples_per_mode=10, separation=6.0, seed=3)
    assert len(ds) == 120 and ds.num_classes == 3
    np.testing.assert_array_equal(ds.labels, ds.fine_labels // 4)
    # each mode is a tight cluster: samples are nearer their own mode mean than other modes'
    x = ds.inputs.numpy()
    means = np.stack([x[ds.fine_labels == m].mean(0) for m in range(12)])
    nearest = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == ds.fine_labels).mean() > 0.95
    again = synthetic(classes=3, modes_per_class=4, dim=8, samples_per_mode=10, separation=6.0, seed=3)
    np.testing.assert_array_equal(again.inputs.numpy(), x)


def test_coarsen_keeps_fine_labels():
    ds = synthetic(classes=4, modes_per_class=1, samples_per_mode=5)
    coarse = coarsen(ds, {0: 0, 1: 0, 2: 1, 3: 1})
    assert coarse.num_classes == 2
    np.testing.assert_array_equal(coarse.fine_labels, ds.labels)
    np.testing.assert_array_equal(coarse.labels, ds.labels // 2)
    with pytest.raises(ValueError, match="fine classes \\[3\\]"):
        coarsen(ds, {0: 0, 1: 0, 2: 1})
    with pytest.raises(ValueError, match="10-class"):
        pairs(ds)


def test_coarsen_keeps_existing_fine_labels():
    ds = synthetic(classes=4, modes_per_class=2, samples_per_mode=5)  # fine labels: 8 modes
    coarse = coarsen(ds, [0, 0, 1, 1])
    np.testing.assert_array_equal(coarse.labels, ds.labels // 2)
    np.testing.assert_array_equal(coarse.fine_labels, ds.fine_labels)
    assert coarse.fine_names == ds.fine_names and len(coarse.fine_names) == 8


def test_split_classes_is_disjoint_first_half():
    labels = np.repeat(np.arange(5), 4)
    s = split_dataset(labels, "classes")
    np.testing.assert_array_equal(s.train_classes, [0, 1, 2])
    assert set(labels[s.train]) == {0, 1, 2} and set(labels[s.test]) == {3, 4}
    assert len(np.intersect1d(s.train, s.test)) == 0 and len(s.train) + len(s.test) == 20


def test_split_samples_is_stratified_and_seeded():
    labels = np.repeat(np.arange(3), 10)
    s = split_dataset(labels, "samples", test_fraction=0.3, seed=1)
    assert np.bincount(labels[s.test]).tolist() == [3, 3, 3]
    assert len(np.intersect1d(s.train, s.test)) == 0
    np.testing.assert_array_equal(s.test, split_dataset(labels, "samples", test_fraction=0.3, seed=1).test)
    with pytest.raises(ValueError, match="split must be one of"):
        split_dataset(labels, "random")
    with pytest.raises(ValueError, match="test_fraction"):
        split_dataset(labels, "samples", test_fraction=1.5)


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*digits.*mnist5k-pairs.*synthetic"):
        load_dataset("cifar")


def test_array_dataset_validates():
    with pytest.raises(ValueError, match="labels must have shape"):
        ArrayDataset(np.zeros((4, 2)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="NaN or inf"):
        ArrayDataset(np.full((2, 2), np.nan), np.zeros(2, dtype=int))
    ds = ArrayDataset(np.zeros((4, 2)), np.array([0, 1, 1, 0]))
    assert ds.thumbnails([0]) is None and not ds.has_images
    batches = list(ds.batches([np.array([0, 2])]))
    assert batches[0][0].shape == (2, 2) and batches[0][1].tolist() == [0, 1]
