"""``correlax train``: train the crop classifier on a manifest (see :mod:`correlax.training.run`)."""

from __future__ import annotations

import argparse
import logging

from correlax.cli.outputs import declare_output, report_skipped
from correlax.models.presets import PRESETS
from correlax.settings import MASK_AUG_CROPS, MASK_FILLS

log = logging.getLogger(__name__)


def _pretrained(value: str) -> bool | str:
    return {"imagenet": True, "none": False}.get(value.lower(), value)


def _devices(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def add_train_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The training options shared by ``train`` and ``crossval``. ``prefix`` (``"train-"`` in ``crossval``)
    goes before the options whose names the CorRELAX options use too (batch size, precision, seed)."""
    p.add_argument("--backbone", default="paper", help=f"preset ({', '.join(f'{k}={v}' for k, v in PRESETS.items())}) or any timm model name")
    p.add_argument("--pretrained", default="imagenet", type=_pretrained, help="imagenet (default), none, or a local weights file")
    p.add_argument("--head", default="reference", choices=("reference", "linear"))
    p.add_argument("--labels", nargs="+", help="labels to learn (default: those with boxes in the training split, plus no_finding)")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument(f"--{prefix}batch-size", dest="train_batch_size", type=int, default=32, help="crops per step")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--steps-per-epoch", type=int, help="optimizer steps per epoch (default: one pass over the crops)")
    p.add_argument("--crops-per-box", type=int, default=4)
    p.add_argument("--crops-per-normal-image", type=int, default=4)
    p.add_argument("--crop-scale", choices=("multi", "window"), default="multi",
                   help="multi: the paper's crops of 0.05-5x the box area (default); window: squares of the input size "
                        "(x/÷1.25) in prepared pixels, the scale the windows are explained at")  # fmt: skip
    p.add_argument("--normal-crops-per-boxed-image", type=int, default=0,
                   help="No Finding crops also from the tissue of each image with boxes, away from every box "
                        "(default 0: only from images without findings, as the paper)")  # fmt: skip
    p.add_argument("--skin-crops-per-image", type=int, default=0,
                   help="No Finding crops centred on the skin line of each image with boxes or without findings, "
                        "away from every box: hard negatives for windows on the breast's edge (default 0)")  # fmt: skip
    p.add_argument("--no-clahe", action="store_true", help="grey image in 3 channels instead of CLAHE fusion")
    p.add_argument("--canonical-flip", action="store_true", help="mirror images so the chest wall is on the left")
    p.add_argument("--target-spacing", type=float, help="resample images to this pixel spacing (mm)")
    p.add_argument(f"--{prefix}seed", dest="train_seed", type=int, default=0, help="seed of training")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--accelerator", default="auto", help="auto, cpu, gpu, ...")
    p.add_argument("--devices", default="auto", type=_devices, help="number of devices per node, or auto")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, fsdp, ...")
    p.add_argument(f"--{prefix}precision", dest="train_precision",
                   help="Lightning precision (default: bf16/16 mixed on GPU, 32 on CPU)")  # fmt: skip
    p.add_argument("--cache-dir", help="folder for prepared images (default RUN/cache)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--mask-aug", type=float, default=0.0,
                   help="fraction of the crops masked as CorRELAX masks them (default: 0)")  # fmt: skip
    p.add_argument("--mask-aug-fill", choices=MASK_FILLS, default="black", help="fill of the masked pixels")
    p.add_argument("--mask-aug-on", choices=MASK_AUG_CROPS, default="normal",
                   help="crops that may be masked: No Finding crops only (default) or all")  # fmt: skip


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the crop classifier on a manifest",
        description="Train on multi-scale crops of a manifest's 'train' split, validate on 'val' (or a patient-wise "
        "part of 'train'), and export RUN/model.safetensors, which 'correlax evaluate' and 'correlax explain' take.",
    )
    p.add_argument("--data", required=True, help="manifest JSON")
    p.add_argument("--out", required=True, help="run folder (checkpoints, exported model, cache)")
    add_train_options(p)
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.ckpt")
    p.set_defaults(func=run)
    declare_output(p)


def train_config(args: argparse.Namespace, data: str, out: str):
    """The :class:`~correlax.training.TrainConfig` that the training options ask for."""
    from correlax.crops import CropSettings
    from correlax.preprocess import PreprocessSettings
    from correlax.training import TrainConfig

    settings = PreprocessSettings(not args.no_clahe, args.canonical_flip, args.target_spacing)
    crops = CropSettings(crops_per_box=args.crops_per_box, crops_per_normal_image=args.crops_per_normal_image,
                         window_side=float(args.input_size) if args.crop_scale == "window" else None,
                         normal_crops_per_boxed_image=args.normal_crops_per_boxed_image,
                         skin_crops_per_image=args.skin_crops_per_image)  # fmt: skip
    return TrainConfig(
        data=data, out=out, backbone=args.backbone, pretrained=args.pretrained, head=args.head,
        labels=tuple(args.labels) if args.labels else None, input_size=args.input_size,
        preprocess=settings.to_dict(), crops=crops.__dict__.copy(), epochs=args.epochs, batch_size=args.train_batch_size,
        lr=args.lr, weight_decay=args.weight_decay, seed=args.train_seed, steps_per_epoch=args.steps_per_epoch,
        num_workers=args.workers, accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes,
        strategy=args.strategy, precision=args.train_precision, cache_dir=args.cache_dir, resume=args.resume,
        augment=not args.no_augment, mask_aug=args.mask_aug, mask_aug_fill=args.mask_aug_fill,
        mask_aug_on=args.mask_aug_on,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from correlax.errors import FileProblem
    from correlax.training import skipped_images, train

    try:
        path = train(train_config(args, args.data, args.out))
    except (ValueError, RuntimeError, FileProblem) as e:
        log.error("%s", e)
        return 1
    print(f"model: {path}")
    return report_skipped(skipped_images(path.parent))
