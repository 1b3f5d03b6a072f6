"""GeoCLIP's pretrained location encoder (Vivanco et al., 2023; MIT), geovec-mini's optional point tower.

GeoCLIP maps a (lat, lon) to a 512-d feature trained to match the CLIP features of photos taken there, so
nearby places get similar features at several scales. Its weights ship in the pip package ``geoclip`` 1.3.0, but
that package requires torchvision and its ``__init__`` imports the image encoder (transformers CLIP +
torchvision); geovec installs it with ``pip install --no-deps geoclip==1.3.0``, never imports it, and rebuilds
the small location encoder here (the same maths and parameter names as upstream's
``geoclip/model/location_encoder.py`` and ``rff/``; a test compares the two on a grid of points):

* the Equal Earth projection of (lat, lon), scaled by ``SF / 180``;
* per capsule, random Fourier features ``[cos(2 pi v B), sin(2 pi v B)]`` with its stored ``B`` (256 x 2,
  drawn at sigma 2^0, 2^4, 2^8: fine to coarse), then an MLP 512 -> 1024 -> 1024 -> 1024 -> 512;
* the sum of the three capsules.

The weights are read once per process, frozen, and shared by every model that uses them; they are not part of
any geovec checkpoint (the package carries them).
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

from geovec.errors import GeovecError

GEOCLIP_VERSION = "1.3.0"
INSTALL = f"install it with pip install --no-deps geoclip=={GEOCLIP_VERSION}"
WEIGHTS = "geoclip/model/weights/location_encoder_weights.pth"
LOCATION_FEATURES = 512
CAPSULES = 3  # upstream's default sigmas: 2**0, 2**4, 2**8 (they only drew B; B is stored)

# Equal Earth projection constants, as upstream writes them
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
SF = 66.50336


def equal_earth(lat_lon: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` degrees (lat, lon) -> ``(n, 2)`` projected (x, y) in upstream's scale."""
    latitude, longitude = torch.deg2rad(lat_lon[:, 0]), torch.deg2rad(lat_lon[:, 1])
    root3 = torch.sqrt(torch.tensor(3.0))
    theta = torch.asin(root3 / 2 * torch.sin(latitude))
    denominator = 3 * (9 * A4 * theta**8 + 7 * A3 * theta**6 + 3 * A2 * theta**2 + A1)
    x = (2 * root3 * longitude * torch.cos(theta)) / denominator
    y = A4 * theta**9 + A3 * theta**7 + A2 * theta**3 + A1 * theta
    return (torch.stack((x, y), dim=1) * SF) / 180


class FourierFeatures(nn.Module):
    """Random Fourier features with a stored, frozen ``b`` (upstream's ``rff.GaussianEncoding``)."""

    def __init__(self, encoded: int = 256, inputs: int = 2) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(encoded, inputs), requires_grad=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        projected = 2 * np.pi * v @ self.b.T
        return torch.cat((torch.cos(projected), torch.sin(projected)), dim=-1)


class Capsule(nn.Module):
    """One scale: Fourier features, a 3-layer ReLU MLP and a linear head (upstream's ``LocationEncoderCapsule``)."""

    def __init__(self) -> None:
        super().__init__()
        self.capsule = nn.Sequential(FourierFeatures(), nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 1024),
                                     nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(1024, LOCATION_FEATURES))

    def forward(self, projected: torch.Tensor) -> torch.Tensor:
        return self.head(self.capsule(projected))


class LocationEncoder(nn.Module):
    """(lat, lon) degrees -> GeoCLIP's 512-d location features; parameter names as upstream's state dict."""

    def __init__(self) -> None:
        super().__init__()
        for index in range(CAPSULES):
            self.add_module(f"LocEnc{index}", Capsule())

    def forward(self, lat_lon: torch.Tensor) -> torch.Tensor:
        projected = equal_earth(lat_lon)
        features = torch.zeros(projected.shape[0], LOCATION_FEATURES, device=projected.device)
        for index in range(CAPSULES):
            features += self._modules[f"LocEnc{index}"](projected)
        return features


def weights_path() -> Path:
    """The location encoder's weights inside the installed ``geoclip`` distribution (found without importing it,
    whose ``__init__`` needs torchvision)."""
    try:
        distribution = importlib.metadata.distribution("geoclip")
    except importlib.metadata.PackageNotFoundError:
        raise GeovecError(f"point_tower 'geoclip' needs the pip package geoclip, which is not installed: "
                          f"{INSTALL}") from None
    if distribution.version != GEOCLIP_VERSION:
        raise GeovecError(f"point_tower 'geoclip' needs geoclip {GEOCLIP_VERSION} (its weights), found "
                          f"{distribution.version}: {INSTALL}")
    path = Path(str(distribution.locate_file(WEIGHTS)))
    if not path.is_file():
        raise GeovecError(f"the geoclip package has no {WEIGHTS} (a broken install?): {INSTALL}")
    return path


@functools.lru_cache(maxsize=1)
def frozen_location_encoder() -> LocationEncoder:
    """GeoCLIP's location encoder with its package weights (loaded strictly), frozen, in eval mode, on the CPU;
    one copy per process."""
    path = weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise GeovecError(f"cannot read GeoCLIP's weights {path}: {exc}") from None
    encoder = LocationEncoder()
    encoder.load_state_dict(state, strict=True)
    return encoder.requires_grad_(False).eval()


def location_features(lat_lon: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` (lat, lon) degrees -> ``(n, 512)`` float32 GeoCLIP features, without gradients and in float32
    even under an autocast (the features are an input, like pixels)."""
    encoder = frozen_location_encoder()
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        return encoder(lat_lon.to(torch.float32).cpu())
