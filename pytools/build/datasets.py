"""Built-in synthetic field images for training the examples: seeded, so every run is identical.

Soil-coloured noise with either regular crop rows (vertical green stripes) or scattered weed blobs.
`crop-weed` labels crop=0 / weed=1; `field-segmentation` labels soil=0 / crop=1 / weeds=2 and
also uses the plant mask.
"""
import torch

CLASSES = {"crop-weed": ["crop", "weed"], "field-segmentation": ["soil", "crop", "weed"]}


def field_images(dataset, n, seed, size=64):
    """Return images (n, 3, size, size) in [0, 1] and targets {"label": (n,), "mask": (n, 1, H, W)}."""
    classes = CLASSES[dataset]
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(classes), (n,), generator=g)
    names = [classes[i] for i in labels.tolist()]
    soil = torch.tensor([0.45, 0.32, 0.20]).view(1, 3, 1, 1)
    green = torch.tensor([0.15, 0.60, 0.15]).view(1, 3, 1, 1)
    images = soil + 0.08 * torch.randn(n, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")

    period = torch.randint(12, 20, (n, 1, 1), generator=g)
    phase = torch.randint(0, 20, (n, 1, 1), generator=g)
    rows = ((xx[None] + phase) % period) < 4

    cx, cy = (torch.randint(0, size, (n, 6, 1, 1), generator=g) for _ in range(2))
    radius = torch.randint(3, 7, (n, 6, 1, 1), generator=g)
    blobs = (((xx[None, None] - cx) ** 2 + (yy[None, None] - cy) ** 2) < radius ** 2).any(dim=1)

    is_crop = torch.tensor([c == "crop" for c in names]).view(n, 1, 1)
    is_weed = torch.tensor([c == "weed" for c in names]).view(n, 1, 1)
    mask = (rows & is_crop) | (blobs & is_weed)
    plants = green + 0.05 * torch.randn(n, 3, size, size, generator=g)
    images = torch.where(mask[:, None], plants, images).clamp(0, 1)
    return images, {"label": labels, "mask": mask[:, None].float()}
