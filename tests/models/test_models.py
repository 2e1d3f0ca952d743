import pytest
import torch

from dmlviz.models import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)])
def test_every_model_maps_images_to_embeddings(name, shape):
    model = build_model(name, shape, embedding_dim=12)
    out = model(torch.rand(5, *shape))
    assert out.shape == (5, 12)
    out.sum().backward()


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_heads_take_vectors(name):
    assert build_model(name, (16,), 4)(torch.rand(3, 16)).shape == (3, 4)


def test_cnn_refuses_vectors_with_a_hint():
    with pytest.raises(ValueError, match="cnn.*\\(channels, height, width\\).*linear"):
        build_model("cnn", (16,), 4)


def test_bad_names_and_dims():
    with pytest.raises(ValueError, match="unknown model 'resnet9'.*cnn, linear, mlp"):
        build_model("resnet9", (16,), 4)
    with pytest.raises(ValueError, match="embedding_dim must be an integer >= 1, got 0"):
        build_model("linear", (16,), 0)


def test_module_passes_through():
    net = torch.nn.Linear(3, 2)
    assert build_model(net, (3,), 2) is net
