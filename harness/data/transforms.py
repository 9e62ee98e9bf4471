"""The official train and test transforms as pure functions of (image, label, generator).

Images are uint8 CHW RGB tensors, labels int64 HxW tensors; every random draw comes from the explicit
`torch.Generator`, so a transform is a deterministic function of its inputs and the generator's seed.

Train (detectron2 ``mask_former_semantic`` mapper, METHOD_SPEC §1 "Augmentation" and §8):
ResizeShortestEdge(choice of short sides, max size) -> RandomCrop(absolute, crop size; with
``SINGLE_CATEGORY_MAX_AREA 1.0`` a plain random crop) -> SSD colour jitter -> horizontal flip (p 0.5) ->
``F.pad`` to exactly ``SIZE_DIVISIBILITY`` (image 128, label ignore; a larger crop is trimmed, §12.10).
Test: ResizeShortestEdge(short, max) of the image only; the label keeps its original size because the
official evaluator resizes the prediction back to the original resolution (METHOD_SPEC §8 "Inference").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .info import TrainSettings

PairTransform = Callable[[torch.Tensor, torch.Tensor, torch.Generator | None], tuple[torch.Tensor, torch.Tensor]]


# -- geometry -------------------------------------------------------------------------------------------
def resize_output_shape(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``: shortest side to `short`, long side capped."""
    scale = short / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > max_size:
        scale = max_size / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a uint8 CHW image; antialiased when shrinking, like the PIL resize detectron2 uses."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0].round().clamp(0, 255).to(torch.uint8)


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize with pixel-centre sampling (PIL NEAREST), never mixing label values."""
    if tuple(label.shape[-2:]) == tuple(size):
        return label
    return F.interpolate(label[None, None].float(), size=size, mode="nearest-exact")[0, 0].to(label.dtype)


def resize_shortest_edge(image: torch.Tensor, label: torch.Tensor | None, short: int, max_size: int,
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    size = resize_output_shape(image.shape[-2], image.shape[-1], short, max_size)
    return resize_image(image, size), (resize_label(label, size) if label is not None else None)


def random_crop(image: torch.Tensor, label: torch.Tensor, crop: int, generator: torch.Generator | None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """detectron2 ``RandomCrop("absolute", (crop, crop))``: a crop of min(crop, side) per side."""
    h, w = image.shape[-2:]
    ch, cw = min(crop, h), min(crop, w)
    y0 = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    x0 = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    return image[:, y0:y0 + ch, x0:x0 + cw], label[y0:y0 + ch, x0:x0 + cw]


def random_hflip(image: torch.Tensor, label: torch.Tensor, p: float, generator: torch.Generator | None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    if float(torch.rand((1,), generator=generator)) < p:
        return image.flip(-1), label.flip(-1)
    return image, label


def pad_to_size(image: torch.Tensor, label: torch.Tensor, size: int, ignore_index: int,
                image_value: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """The mapper's ``F.pad(x, [0, size - w, 0, size - h])``: pads right/bottom, or trims when negative."""
    h, w = image.shape[-2:]
    pad = [0, size - w, 0, size - h]
    return F.pad(image, pad, value=image_value), F.pad(label, pad, value=ignore_index)


# -- SSD colour jitter --------------------------------------------------------------------------------------
def _rand_bit(g: torch.Generator | None) -> bool:
    return bool(torch.randint(0, 2, (1,), generator=g))


def _uniform(lo: float, hi: float, g: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((1,), generator=g))


def _convert(x: torch.Tensor, alpha: float = 1.0, beta: float = 0.0) -> torch.Tensor:
    # the official ``convert``: float affine, clip, then uint8 truncation
    return (x.float() * alpha + beta).clamp(0, 255).floor()


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """CHW float RGB in [0, 255] -> HSV with H in degrees [0, 360), S in [0, 1], V in [0, 255]."""
    r, g, b = rgb.unbind(0)
    v, _ = rgb.max(0)
    mn, _ = rgb.min(0)
    delta = v - mn
    s = torch.where(v > 0, delta / v.clamp(min=1e-6), torch.zeros_like(v))
    safe = delta.clamp(min=1e-6)
    h = torch.where(v == r, (g - b) / safe, torch.where(v == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = torch.where(delta > 0, (h * 60) % 360, torch.zeros_like(h))
    return torch.stack([h, s, v])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = hsv.unbind(0)
    c = v * s
    hp = (h % 360) / 60
    x = c * (1 - (hp % 2 - 1).abs())
    zero = torch.zeros_like(c)
    sector = hp.floor().long().clamp(0, 5)
    r = torch.stack([c, x, zero, zero, x, c])
    g = torch.stack([x, c, c, x, zero, zero])
    b = torch.stack([zero, zero, x, c, c, x])
    idx = sector[None]
    rgb = torch.stack([r.gather(0, idx)[0], g.gather(0, idx)[0], b.gather(0, idx)[0]])
    return rgb + (v - c)[None]


def color_aug_ssd(image: torch.Tensor, generator: torch.Generator | None, brightness_delta: int = 32,
                  contrast: tuple[float, float] = (0.5, 1.5), saturation: tuple[float, float] = (0.5, 1.5),
                  hue_delta: int = 18) -> torch.Tensor:
    """MaskFormer's ``ColorAugSSDTransform`` (defaults as there): brightness, then contrast before or after
    saturation+hue, each applied with probability 1/2. Hue shifts are in OpenCV units (2 degrees each).

    The official code converts BGR<->HSV with OpenCV on uint8; here the HSV round trip is in float, so
    values match up to rounding, not bit for bit.
    """
    g = generator
    x = image.float()
    if _rand_bit(g):
        x = _convert(x, beta=_uniform(-brightness_delta, brightness_delta, g))

    def _contrast(t: torch.Tensor) -> torch.Tensor:
        return _convert(t, alpha=_uniform(*contrast, g)) if _rand_bit(g) else t

    def _saturation(t: torch.Tensor) -> torch.Tensor:
        if not _rand_bit(g):
            return t
        hsv = rgb_to_hsv(t)
        hsv[1] = (hsv[1] * _uniform(*saturation, g)).clamp(0, 1)
        return hsv_to_rgb(hsv).round().clamp(0, 255)

    def _hue(t: torch.Tensor) -> torch.Tensor:
        if not _rand_bit(g):
            return t
        hsv = rgb_to_hsv(t)
        shift = int(torch.randint(-hue_delta, hue_delta + 1, (1,), generator=g))
        hsv[0] = (hsv[0] + 2 * shift) % 360
        return hsv_to_rgb(hsv).round().clamp(0, 255)

    if _rand_bit(g):
        x = _hue(_saturation(_contrast(x)))
    else:
        x = _contrast(_hue(_saturation(x)))
    return x.to(torch.uint8)


# -- pipelines --------------------------------------------------------------------------------------------
def train_transform(settings: TrainSettings, ignore_index: int = 255) -> PairTransform:
    """The official training augmentation as one deterministic function of (image, label, generator)."""

    def apply(image: torch.Tensor, label: torch.Tensor, generator: torch.Generator | None,
              ) -> tuple[torch.Tensor, torch.Tensor]:
        choices = settings.min_size_choices
        short = choices[int(torch.randint(0, len(choices), (1,), generator=generator))]
        image, label = resize_shortest_edge(image, label, short, settings.max_size)
        image, label = random_crop(image, label, settings.crop_size, generator)
        if settings.color_aug_ssd:
            image = color_aug_ssd(image, generator)
        image, label = random_hflip(image, label, settings.flip_prob, generator)
        return pad_to_size(image, label, settings.size_divisibility, ignore_index)

    return apply


def inference_transform(short: int, max_size: int) -> PairTransform:
    """Resize the image's shortest side; the label stays at the original size for evaluation."""

    def apply(image: torch.Tensor, label: torch.Tensor, generator: torch.Generator | None = None,
              ) -> tuple[torch.Tensor, torch.Tensor]:
        image, _ = resize_shortest_edge(image, None, short, max_size)
        return image, label

    return apply
