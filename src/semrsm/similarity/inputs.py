"""Validation and normalisation of representations into sets of position vectors."""

from collections.abc import Sequence

import numpy as np
import torch

_LAYOUTS = "(N, C, H, W) feature maps or (N, T, D) tokens"


def _to_tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise ValueError(f"{what}: numpy array of dtype object is not numeric")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise ValueError(f"{what}: expected a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


def _compute_dtype(tensor: torch.Tensor, what: str) -> torch.dtype:
    if not tensor.is_floating_point():
        raise ValueError(f"{what}: dtype {tensor.dtype} is not floating point (use float16/32/64)")
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def _check_finite(sets: torch.Tensor, what: str) -> None:
    finite = torch.isfinite(sets).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(f"{what}: NaN or Inf values in sample(s) {bad[:10]}")


def _stack_samples(samples: Sequence, what: str) -> torch.Tensor:
    tensors = [_to_tensor(sample, f"{what}[{index}]") for index, sample in enumerate(samples)]
    for index, tensor in enumerate(tensors):
        if tensor.shape != tensors[0].shape:
            raise ValueError(
                f"{what}: sample {index} has shape {tuple(tensor.shape)} but sample 0 has "
                f"{tuple(tensors[0].shape)}; every sample needs the same positions and channels"
            )
        if tensor.device != tensors[0].device:
            raise ValueError(f"{what}: sample {index} is on {tensor.device}, sample 0 on {tensors[0].device}")
    return torch.stack(tensors)


def as_sets(reps, what: str = "reps", min_samples: int = 2) -> torch.Tensor:
    """Validate ``reps`` and return a contiguous (N, S, C) tensor of S position vectors per sample.

    ``reps`` is a torch tensor or numpy array shaped (N, C, H, W) (feature maps, S = H*W) or (N, T, D) (tokens,
    S = T), or a sequence of N per-sample (C, H, W) / (T, D) arrays. float16/bfloat16 become float32, float64 stays.
    The result lives on the input's device.
    """
    if isinstance(reps, Sequence) and not isinstance(reps, str):
        if len(reps) == 0:
            raise ValueError(f"{what}: empty sequence of samples")
        tensor = _stack_samples(reps, what)
    else:
        tensor = _to_tensor(reps, what)
    if tensor.ndim == 4:
        sets = tensor.flatten(2).transpose(1, 2)
    elif tensor.ndim == 3:
        sets = tensor
    else:
        raise ValueError(f"{what}: expected {_LAYOUTS}, got {tensor.ndim}-D shape {tuple(tensor.shape)}")
    if sets.shape[0] < min_samples:
        raise ValueError(f"{what}: need at least {min_samples} samples, got N={sets.shape[0]}")
    if sets.shape[1] == 0 or sets.shape[2] == 0:
        raise ValueError(f"{what}: empty positions or channels in shape {tuple(tensor.shape)}")
    sets = sets.to(_compute_dtype(tensor, what)).contiguous()
    _check_finite(sets, what)
    return sets


def as_pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate one pair of (S, C) sets (same S and C) and return them as 2-D tensors of one dtype."""
    tensors = []
    for name, value in (("x", x), ("y", y)):
        tensor = _to_tensor(value, name)
        if tensor.ndim != 2:
            raise ValueError(
                f"{name}: expected an (S, C) set of position vectors, got shape {tuple(tensor.shape)}"
            )
        tensors.append(tensor)
    if tensors[0].shape != tensors[1].shape:
        raise ValueError(f"x and y: shapes differ, {tuple(tensors[0].shape)} vs {tuple(tensors[1].shape)}")
    sets = as_sets([tensors[0], tensors[1]], what="x, y")
    return sets[0], sets[1]
