"""Per-backbone image preprocessing: resize, centre crop, normalise."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image
from torchvision import transforms

INTERPOLATIONS = {
    "nearest": transforms.InterpolationMode.NEAREST,
    "bilinear": transforms.InterpolationMode.BILINEAR,
    "bicubic": transforms.InterpolationMode.BICUBIC,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ToRGB:
    """Convert any PIL image (grey, RGBA, palette) to 3-channel RGB."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.mode == "RGB" else image.convert("RGB")


@dataclass(frozen=True)
class Preprocess:
    """What a backbone expects: shorter side resized to `resize_size`, centre crop of `image_size`,
    pixel values in [0, 1] normalised with `mean` / `std` per channel."""

    image_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.resize_size < self.image_size:
            raise ValueError(
                f"need 1 <= image_size <= resize_size, got image_size={self.image_size}, "
                f"resize_size={self.resize_size}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values (std > 0), got mean={self.mean}, std={self.std}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {sorted(INTERPOLATIONS)}")

    def transform(self) -> transforms.Compose:
        """A picklable PIL.Image -> float tensor (3, image_size, image_size) transform."""
        return transforms.Compose(
            [
                ToRGB(),
                transforms.Resize(self.resize_size, interpolation=INTERPOLATIONS[self.interpolation]),
                transforms.CenterCrop(self.image_size),
                transforms.ToTensor(),
                transforms.Normalize(self.mean, self.std),
            ]
        )


def preprocess_from_crop_pct(
    image_size: int, crop_pct: float, mean, std, interpolation: str = "bilinear"
) -> Preprocess:
    """Preprocess whose resize size is `image_size / crop_pct` (timm's convention)."""
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    return Preprocess(
        image_size=int(image_size),
        resize_size=int(image_size / crop_pct),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        interpolation=interpolation,
    )
