"""The networks whose functional graphs are studied.

Every network is a plain :class:`torch.nn.Module` whose ``forward`` returns
**log-probabilities** (a final :class:`torch.nn.LogSoftmax`), so that training
uses ``nll_loss`` (= cross-entropy on the logits) for every architecture.

Every network also carries ``functional_layers``: the names (as in
``model.named_modules()``) of the submodules whose outputs are the nodes of the
functional graph, in forward order. Each unit of such an output is one node: a
convolutional output of shape ``(C, H, W)`` contributes ``C * H * W`` nodes. The
lists follow the research code this package replaces; every listed output is
produced by its own submodule (no functional ``F.*`` call at those points), so a
forward hook on the module sees exactly the node activations. No ReLU is in-place,
so a hooked tensor is never overwritten later in the forward pass.

Node counts (sum over ``functional_layers`` of the per-sample output size):

==============  ===========  ===========  ==========================================
network         1x28x28      3x32x32      functional layers
==============  ===========  ===========  ==========================================
lenet           1,820        2,520        relu(pool(conv1)), relu(pool(conv2)),
                                          relu(fc1), log-softmax
lenet_300_100   410          410          relu(fc1), relu(fc2), log-softmax
conv_2          13,066       16,906       relu(pool(conv2)), relu(fc1), relu(fc2),
                                          log-softmax
conv_4          19,338       25,098       relu(pool(conv2)), relu(pool(conv4)),
                                          relu(fc1), relu(fc2), log-softmax
conv_6          15,370       21,002       relu(conv5), relu(pool(conv6)), relu(fc1),
                                          relu(fc2), log-softmax
alexnet         1,674        4,618        pool1, pool2, relu3, relu4, pool5,
                                          log-softmax
vgg16           31,114       36,874       features.13 (pool after block 2),
                                          features.19 (relu of conv 2 of block 3),
                                          features.26 (relu of conv 1 of block 4),
                                          features.33 (pool after block 4),
                                          features.39 (relu of conv 2 of block 5),
                                          log-softmax
resnet18        21,258       25,098       layer3 and layer4 outputs (each the final
                                          ReLU of the stage's last block), the
                                          global average pool, log-softmax
==============  ===========  ===========  ==========================================

The defaults of the original study are 1x28x28 (MNIST, Fashion-MNIST) for
``lenet``, ``lenet_300_100`` and ``conv_*``, and 3x32x32 (CIFAR-10, SVHN) for
``alexnet``, ``vgg16`` and ``resnet18``. The counts of the published method are
1,820 for LeNet on MNIST and about 36.9k for VGG16 at 32x32 (reproduced here).
For ResNet18 the original listed the pooled 512-vector twice (once pooled, once
flattened: identical values, i.e. 512 pairs of nodes at distance 0), giving
25,610 nodes; here it is counted once (25,098).

Differences from the original definitions, all of them fixes: the flattened
feature size is computed from ``input_size`` (the original hard-coded sizes that
were wrong for some inputs); ``in_channels`` and ``num_classes`` are honoured
everywhere; VGG16 uses ``ceil_mode`` max-pooling and AlexNet a final adaptive
max-pool so that both also accept 28x28 inputs (identical to the original at
32x32); ResNet18 uses an adaptive average pool (identical to ``avg_pool2d(4)``
at 32x32).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, List, Sequence

import torch
from torch import nn

__all__ = [
    "NETWORKS",
    "ALIASES",
    "canonical_name",
    "get_network",
    "count_nodes",
    "LeNet",
    "LeNet300100",
    "ConvX",
    "AlexNet",
    "VGG16",
    "ResNet18",
]

NETWORKS = ("lenet", "lenet_300_100", "conv_2", "conv_4", "conv_6", "alexnet", "vgg16", "resnet18")
ALIASES = {"vgg": "vgg16", "resnet": "resnet18"}


def _check_dims(name: str, in_channels: int, input_size: int, num_classes: int, min_size: int) -> None:
    for label, value, low in (("in_channels", in_channels, 1), ("input_size", input_size, min_size),
                              ("num_classes", num_classes, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: {label} must be an integer >= {low}, got {value!r}")


class LeNet(nn.Module):
    """LeNet as in the original study (the PyTorch MNIST example network).

    conv 5x5 (in -> 10), max-pool 2, ReLU; conv 5x5 (10 -> 20), 2-D dropout
    (p = 0.5, active in training only, as in the original), max-pool 2, ReLU;
    flatten; fc (-> 50), ReLU; fc (50 -> classes); log-softmax.

    Functional layers: ``relu1`` (10x12x12 on 28x28), ``relu2`` (320),
    ``relu3`` (50), ``log_softmax`` (10): 1,820 nodes on MNIST.
    """

    def __init__(self, in_channels: int = 1, input_size: int = 28, num_classes: int = 10) -> None:
        super().__init__()
        _check_dims("lenet", in_channels, input_size, num_classes, 16)
        side = ((input_size - 4) // 2 - 4) // 2
        self.conv1 = nn.Conv2d(in_channels, 10, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(0.5)
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(20 * side * side, 50)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(50, num_classes)
        self.log_softmax = nn.LogSoftmax(dim=1)
        self.functional_layers: List[str] = ["relu1", "relu2", "relu3", "log_softmax"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.pool1(self.conv1(x)))
        x = self.relu2(self.pool2(self.conv2_drop(self.conv2(x))))
        x = self.relu3(self.fc1(self.flatten(x)))
        return self.log_softmax(self.fc2(x))


class LeNet300100(nn.Module):
    """The fully connected LeNet-300-100: fc 300, ReLU, fc 100, ReLU, fc classes.

    Functional layers: ``relu1`` (300), ``relu2`` (100), ``log_softmax`` (10).
    """

    def __init__(self, in_channels: int = 1, input_size: int = 28, num_classes: int = 10) -> None:
        super().__init__()
        _check_dims("lenet_300_100", in_channels, input_size, num_classes, 1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_channels * input_size * input_size, 300)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(300, 100)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(100, num_classes)
        self.log_softmax = nn.LogSoftmax(dim=1)
        self.functional_layers: List[str] = ["relu1", "relu2", "log_softmax"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.fc1(self.flatten(x)))
        x = self.relu2(self.fc2(x))
        return self.log_softmax(self.fc3(x))


class ConvX(nn.Module):
    """Conv-2 / Conv-4 / Conv-6 of Frankle & Carbin (the lottery-ticket networks).

    ``n_blocks`` blocks of two 3x3 convolutions (padding 1) with widths 64, 128,
    256; each block ends with a 2x2 max-pool. Then fc 256, ReLU, fc 256, ReLU,
    fc classes, log-softmax. Module names: ``conv1`` .. ``conv{2k}``, ``relu1`` ..
    ``relu{2k}`` (the ReLU after the pool for the second conv of each block),
    ``pool2``, ``pool4``, ``pool6``; ``fc1``, ``relu_fc1``, ``fc2``,
    ``relu_fc2``, ``fc3``, ``log_softmax``.

    Functional layers (as in the original study): Conv-2: ``relu2``, the fc
    ReLUs, the output; Conv-4: ``relu2``, ``relu4``, the fc ReLUs, the output;
    Conv-6: ``relu5``, ``relu6``, the fc ReLUs, the output.
    """

    _WIDTHS = (64, 128, 256)
    _FUNCTIONAL = {1: ["relu2"], 2: ["relu2", "relu4"], 3: ["relu5", "relu6"]}

    def __init__(self, n_blocks: int, in_channels: int = 1, input_size: int = 28,
                 num_classes: int = 10) -> None:
        super().__init__()
        if n_blocks not in (1, 2, 3):
            raise ValueError(f"conv_x: n_blocks must be 1, 2 or 3 (Conv-2/4/6), got {n_blocks!r}")
        _check_dims(f"conv_{2 * n_blocks}", in_channels, input_size, num_classes, 2 ** n_blocks)
        self.n_blocks = n_blocks
        channels = in_channels
        side = input_size
        index = 0
        for width in self._WIDTHS[:n_blocks]:
            index += 1
            self.add_module(f"conv{index}", nn.Conv2d(channels, width, kernel_size=3, padding=1))
            self.add_module(f"relu{index}", nn.ReLU())
            index += 1
            self.add_module(f"conv{index}", nn.Conv2d(width, width, kernel_size=3, padding=1))
            self.add_module(f"pool{index}", nn.MaxPool2d(2))
            self.add_module(f"relu{index}", nn.ReLU())
            channels = width
            side //= 2
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(channels * side * side, 256)
        self.relu_fc1 = nn.ReLU()
        self.fc2 = nn.Linear(256, 256)
        self.relu_fc2 = nn.ReLU()
        self.fc3 = nn.Linear(256, num_classes)
        self.log_softmax = nn.LogSoftmax(dim=1)
        self.functional_layers: List[str] = self._FUNCTIONAL[n_blocks] + ["relu_fc1", "relu_fc2", "log_softmax"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in range(self.n_blocks):
            first, second = 2 * block + 1, 2 * block + 2
            x = getattr(self, f"relu{first}")(getattr(self, f"conv{first}")(x))
            x = getattr(self, f"relu{second}")(getattr(self, f"pool{second}")(getattr(self, f"conv{second}")(x)))
        x = self.relu_fc1(self.fc1(self.flatten(x)))
        x = self.relu_fc2(self.fc2(x))
        return self.log_softmax(self.fc3(x))


class AlexNet(nn.Module):
    """A small 5-convolution AlexNet for 32x32 (or 28x28) inputs.

    ``features``: conv 7x7/4 (-> 64), ReLU, pool 2; conv 5x5 (-> 192), ReLU,
    pool 2; conv 3x3 (-> 384), ReLU; conv 3x3 (-> 256), ReLU; conv 3x3
    (-> 256), ReLU; global max-pool. Then fc 256 -> classes, log-softmax.

    Functional layers: ``features.2``, ``features.5`` (the first two pools),
    ``features.7``, ``features.9`` (ReLUs of conv 3 and 4), ``features.12``
    (the final pool), ``log_softmax``.
    """

    def __init__(self, in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        _check_dims("alexnet", in_channels, input_size, num_classes, 15)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=7, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(256, num_classes)
        self.log_softmax = nn.LogSoftmax(dim=1)
        self.functional_layers: List[str] = [
            "features.2", "features.5", "features.7", "features.9", "features.12", "log_softmax"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_softmax(self.classifier(self.flatten(self.features(x))))


_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """VGG16 with batch normalisation, CIFAR variant (one linear classifier).

    ``features`` is a flat :class:`~torch.nn.Sequential` of (conv 3x3, batch
    norm, ReLU) triples and 2x2 max-pools (``ceil_mode``, identical to plain
    pooling at 32x32), so module indices match the classic layout; then
    flatten, fc (512 * s * s -> classes) with s = input_size / 32 rounded up,
    log-softmax.

    Functional layers: ``features.13`` (pool after block 2, 128x8x8 at
    32x32), ``features.19`` (ReLU of the second conv of block 3, 256x8x8),
    ``features.26`` (ReLU of the first conv of block 4, 512x4x4),
    ``features.33`` (pool after block 4, 512x2x2), ``features.39`` (ReLU of the
    second conv of block 5, 512x2x2), ``log_softmax``: 36,874 nodes at 32x32.
    """

    def __init__(self, in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        _check_dims("vgg16", in_channels, input_size, num_classes, 1)
        layers: List[nn.Module] = []
        channels = in_channels
        side = input_size
        for item in _VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
                side = math.ceil(side / 2)
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1),
                           nn.BatchNorm2d(int(item)), nn.ReLU()]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(512 * side * side, num_classes)
        self.log_softmax = nn.LogSoftmax(dim=1)
        self.functional_layers: List[str] = [
            "features.13", "features.19", "features.26", "features.33", "features.39", "log_softmax"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_softmax(self.classifier(self.flatten(self.features(x))))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + batch norm, identity or 1x1 shortcut.

    ``relu1`` follows the first convolution; ``relu2`` is the block output
    (after the residual sum).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet18: 3x3 stem (64), four stages of two basic blocks
    (64, 128, 256, 512 planes; stride 1, 2, 2, 2), global average pool, fc,
    log-softmax.

    Functional layers: ``layer3`` (256x8x8 at 32x32), ``layer4`` (512x4x4),
    ``avgpool`` (512), ``log_softmax``: 25,098 nodes at 32x32.
    """

    def __init__(self, in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        _check_dims("resnet18", in_channels, input_size, num_classes, 1)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        in_planes = 64
        for index, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            self.add_module(f"layer{index}", nn.Sequential(BasicBlock(in_planes, planes, stride),
                                                            BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(512, num_classes)
        self.log_softmax = nn.LogSoftmax(dim=1)
        self.functional_layers: List[str] = ["layer3", "layer4", "avgpool", "log_softmax"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.log_softmax(self.linear(self.flatten(self.avgpool(x))))


def canonical_name(name: str) -> str:
    """Return the canonical network name for ``name`` (aliases resolved).

    Raises
    ------
    ValueError
        If ``name`` is not a known network; the message lists the valid names.
    """
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in NETWORKS:
        valid = ", ".join(NETWORKS) + " (aliases: " + ", ".join(f"{a} -> {b}" for a, b in ALIASES.items()) + ")"
        raise ValueError(f"unknown network {name!r}; valid names: {valid}")
    return key


def get_network(name: str, *, in_channels: int = 1, input_size: int = 28, num_classes: int = 10) -> nn.Module:
    """Build a freshly initialised network by name.

    Parameters
    ----------
    name : str
        One of :data:`NETWORKS` (case-insensitive), or an alias ``"vgg"``
        (vgg16) or ``"resnet"`` (resnet18).
    in_channels : int
        Channels of the input images (1 for MNIST, 3 for CIFAR-10 / SVHN).
    input_size : int
        Side of the square input images, in pixels.
    num_classes : int
        Number of output classes.

    Returns
    -------
    torch.nn.Module
        The network, with a ``functional_layers`` attribute (module names whose
        outputs are the functional-graph nodes). Its ``forward`` returns
        log-probabilities of shape ``(batch, num_classes)``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones) or impossible sizes.
    """
    key = canonical_name(name)
    kwargs = dict(in_channels=in_channels, input_size=input_size, num_classes=num_classes)
    if key == "lenet":
        return LeNet(**kwargs)
    if key == "lenet_300_100":
        return LeNet300100(**kwargs)
    if key.startswith("conv_"):
        return ConvX(int(key[-1]) // 2, **kwargs)
    if key == "alexnet":
        return AlexNet(**kwargs)
    if key == "vgg16":
        return VGG16(**kwargs)
    return ResNet18(**kwargs)


def count_nodes(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, int]:
    """Number of functional-graph nodes contributed by each functional layer.

    Parameters
    ----------
    model : torch.nn.Module
        A network with a ``functional_layers`` attribute (see :func:`get_network`).
    input_shape : sequence of int
        Shape of one input sample, ``(C, H, W)``; a leading batch dimension
        ``(N, C, H, W)`` is accepted and ignored.

    Returns
    -------
    dict
        ``{layer name: per-sample number of output units}``, in forward order.
        The total number of nodes is ``sum(result.values())``.

    Notes
    -----
    Runs one forward pass on zeros (batch of 2, in eval mode, without
    gradients); the model's training mode is restored afterwards.
    """
    layers = list(getattr(model, "functional_layers", None) or [])
    if not layers:
        raise ValueError("count_nodes: the model has no 'functional_layers' attribute (build it with get_network)")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"count_nodes: input_shape must be (C, H, W) or (N, C, H, W), got {tuple(input_shape)!r}")
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"count_nodes: functional layers {missing} are not submodules of the model")
    counts: "OrderedDict[str, int]" = OrderedDict((name, 0) for name in layers)
    seen: Dict[str, int] = {}

    def make_hook(layer: str):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            seen[layer] = seen.get(layer, 0) + 1
            counts[layer] = int(output[0].numel())
        return hook

    handles = [modules[name].register_forward_hook(make_hook(name)) for name in layers]
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros((2,) + shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    twice = [name for name, n in seen.items() if n != 1]
    if twice or len(seen) != len(layers):
        raise ValueError(f"count_nodes: every functional layer must run exactly once per forward pass; "
                         f"calls: { {name: seen.get(name, 0) for name in layers} }")
    return dict(counts)
