"""Networks: shapes, functional layers and node counts."""

from functools import lru_cache

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread is several times faster."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

from topodnn.networks import ALIASES, NETWORKS, canonical_name, count_nodes, get_network

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)

# Node counts documented in topodnn.networks (per-sample outputs of the functional layers).
EXPECTED_NODES = {
    ("lenet", MNIST): 1820,
    ("lenet", CIFAR): 2520,
    ("lenet_300_100", MNIST): 410,
    ("conv_2", MNIST): 13066,
    ("conv_4", MNIST): 19338,
    ("conv_6", MNIST): 15370,
    ("conv_6", CIFAR): 21002,
    ("alexnet", CIFAR): 4618,
    ("alexnet", MNIST): 1674,
    ("vgg16", CIFAR): 36874,
    ("vgg16", MNIST): 31114,
    ("resnet18", CIFAR): 25098,
    ("resnet18", MNIST): 21258,
}


@lru_cache(maxsize=None)
def build(name, shape, num_classes=10):
    """One shared instance per configuration (building VGG16 takes a while); tests must not mutate it."""
    torch.manual_seed(0)
    return get_network(name, in_channels=shape[0], input_size=shape[1], num_classes=num_classes)


@pytest.mark.parametrize("name,shape", sorted(EXPECTED_NODES))
def test_node_counts(name, shape):
    counts = count_nodes(build(name, shape), shape)
    assert sum(counts.values()) == EXPECTED_NODES[(name, shape)]


def test_lenet_layers_match_the_original():
    counts = count_nodes(get_network("lenet"), MNIST)
    assert counts == {"relu1": 1440, "relu2": 320, "relu3": 50, "log_softmax": 10}


def test_vgg_and_resnet_match_the_published_sizes():
    # "VGG16 at 32x32: about 36.9k nodes; ResNet18: about 25.6k" (25,610 with the pooled vector counted twice).
    assert abs(sum(count_nodes(build("vgg16", CIFAR), CIFAR).values()) - 36_900) < 100
    resnet = count_nodes(build("resnet18", CIFAR), CIFAR)
    assert sum(resnet.values()) + resnet["avgpool"] == 25_610


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("shape", [MNIST, CIFAR])
def test_forward_gives_log_probabilities(name, shape):
    model = build(name, shape).eval()
    with torch.no_grad():
        out = model(torch.randn((2,) + shape))
    assert out.shape == (2, 10)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize("name", NETWORKS)
def test_num_classes_and_channels_are_honoured(name):
    model = get_network(name, in_channels=2, input_size=20, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, 20, 20))
    assert out.shape == (2, 7)


@pytest.mark.parametrize("name", NETWORKS)
def test_functional_layers_are_hookable_submodules(name):
    model = build(name, CIFAR if name in ("alexnet", "vgg16", "resnet18") else MNIST)
    modules = dict(model.named_modules())
    assert model.functional_layers, name
    assert len(set(model.functional_layers)) == len(model.functional_layers)
    for layer in model.functional_layers:
        assert layer in modules, layer
    # The last functional layer is the network output.
    model.eval()
    captured = {}
    handle = modules[model.functional_layers[-1]].register_forward_hook(
        lambda _m, _i, out: captured.setdefault("out", out.detach().clone()))
    shape = CIFAR if name in ("alexnet", "vgg16", "resnet18") else MNIST
    x = torch.randn((2,) + shape)
    with torch.no_grad():
        out = model(x)
    handle.remove()
    assert torch.equal(captured["out"], out)


def test_hooked_relu_outputs_are_not_overwritten_later():
    # In-place ops after a functional layer would silently change recorded activations.
    for name in NETWORKS:
        model = build(name, CIFAR).eval()
        modules = dict(model.named_modules())
        records = {}
        handles = [modules[layer].register_forward_hook(
            lambda _m, _i, out, layer=layer: records.__setitem__(layer, (out, out.detach().clone())))
            for layer in model.functional_layers]
        with torch.no_grad():
            model(torch.randn((2,) + CIFAR))
        for handle in handles:
            handle.remove()
        for layer, (live, copy) in records.items():
            assert torch.equal(live, copy), (name, layer)
        assert not any(getattr(m, "inplace", False) for m in model.modules()), name


def test_names_and_aliases():
    for name in NETWORKS:
        assert canonical_name(name) == name
        assert canonical_name(name.upper()) == name
    for alias, target in ALIASES.items():
        assert canonical_name(alias) == target
        assert type(get_network(alias, in_channels=3, input_size=32)) is type(get_network(target, in_channels=3,
                                                                                              input_size=32))
    assert ALIASES == {"vgg": "vgg16", "resnet": "resnet18"}


def test_unknown_network_lists_valid_names():
    with pytest.raises(ValueError) as info:
        get_network("lenet5")
    for name in NETWORKS:
        assert name in str(info.value)


@pytest.mark.parametrize("kwargs", [{"in_channels": 0}, {"input_size": 8}, {"num_classes": 1},
                                    {"input_size": 28.0}])
def test_bad_sizes_are_rejected(kwargs):
    with pytest.raises(ValueError):
        get_network("lenet", **kwargs)


def test_count_nodes_checks_its_input():
    model = get_network("lenet")
    assert count_nodes(model, (5,) + MNIST) == count_nodes(model, MNIST)
    with pytest.raises(ValueError, match="input_shape"):
        count_nodes(model, (28, 28))
    with pytest.raises(ValueError, match="functional_layers"):
        count_nodes(torch.nn.Linear(3, 3), (1, 1, 3))
    model.functional_layers = ["relu1", "nope"]
    with pytest.raises(ValueError, match="nope"):
        count_nodes(model, MNIST)


def test_count_nodes_restores_training_mode():
    model = get_network("lenet_300_100", in_channels=1, input_size=16)
    model.train()
    count_nodes(model, (1, 16, 16))
    assert model.training
    model.eval()
    count_nodes(model, (1, 16, 16))
    assert not model.training
