"""Weight sources: the Hugging Face hub cache (downloading only when online) and local checkpoints.

Missing weights never fall back to a random init: they raise `MissingWeightsError` at once, naming the
backbone, the hub id, the cache path expected, and how to pass a local file instead.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

LOCAL_HINT = "or pass a local checkpoint file: backbone.pretrained=/path/to/ckpt"
_TRUE = {"1", "true", "yes", "on"}


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights were requested but are neither available locally nor downloadable."""


def hub_is_offline() -> bool:
    """True when HF_HUB_OFFLINE is set or the hub's host cannot be reached within 3 seconds.

    The reachability probe is skipped when an HTTP(S) proxy is configured (the hub client uses it)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        return True
    if any(os.environ.get(var) for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return True
    return False


def hub_cache_dir(repo_id: str) -> Path:
    """Where the hub client keeps the files of `repo_id`."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def hub_file(backbone: str, repo_id: str, filenames: Sequence[str]) -> Path:
    """Local path of the first of `filenames` found in hub repo `repo_id`: from the cache, else downloaded."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename)
        if isinstance(cached, str):
            return Path(cached)
    if hub_is_offline():
        raise _missing(
            backbone, repo_id, filenames, "offline: HF_HUB_OFFLINE is set or the hub is unreachable"
        )
    for filename in filenames:
        try:
            return Path(hf_hub_download(repo_id, filename))
        except LocalEntryNotFoundError as error:
            raise _missing(backbone, repo_id, filenames, str(error)) from error
        except EntryNotFoundError:
            continue
        except Exception as error:  # network, auth or server errors all mean: no weights
            raise _missing(backbone, repo_id, filenames, f"{type(error).__name__}: {error}") from error
    raise _missing(backbone, repo_id, filenames, "none of these files exists in the repository")


def _missing(backbone: str, repo_id: str, filenames: Sequence[str], reason: str) -> MissingWeightsError:
    return MissingWeightsError(
        f"No pretrained weights for backbone '{backbone}': hub id '{repo_id}' (file {' or '.join(filenames)}) "
        f"is not in the local cache {hub_cache_dir(repo_id)} and cannot be downloaded ({reason}). "
        f"Download it where there is internet (`hf download {repo_id}`) and copy the cache here, "
        f"{LOCAL_HINT}."
    )


def read_state_dict(path: str | os.PathLike, backbone: str) -> dict[str, Tensor]:
    """Tensors of a checkpoint file (.safetensors or torch.save'd dict; a nested "state_dict" or
    "model" entry is unwrapped)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise MissingWeightsError(f"Checkpoint file for backbone '{backbone}' not found: {file}")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file), device="cpu")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"Cannot read checkpoint {file} for backbone '{backbone}' as a state dict "
            f"(save one with torch.save(model.state_dict(), path)): {error}"
        ) from error
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"Checkpoint {file} for backbone '{backbone}' does not hold a state dict of tensors")
    return dict(state)


def load_checkpoint(module: nn.Module, path: str | os.PathLike, backbone: str) -> None:
    """Load a local checkpoint into `module`, strictly.

    The checkpoint's keys may carry any common prefix (e.g. "image_encoder." in SAM's file, "visual." in
    open_clip's, "model." or "backbone.model." from a wrapper); entries outside that prefix are ignored."""
    state = read_state_dict(path, backbone)
    expected = list(module.state_dict())
    prefix = _find_prefix(expected, state)
    if prefix is None:
        missing = [key for key in expected if key not in state]
        raise ValueError(
            f"Checkpoint {path} does not fit backbone '{backbone}': {len(missing)} of its {len(expected)} "
            f"entries are missing, e.g. {missing[:5]}"
        )
    try:
        module.load_state_dict({key: state[prefix + key] for key in expected}, strict=True)
    except RuntimeError as error:
        raise ValueError(f"Checkpoint {path} does not fit backbone '{backbone}': {error}") from error


def _find_prefix(expected: list[str], state: Mapping[str, Tensor]) -> str | None:
    first = expected[0]
    candidates = [key[: len(key) - len(first)] for key in state if key.endswith(first)]
    for prefix in sorted(candidates, key=len):
        if (prefix == "" or prefix.endswith(".")) and all(prefix + key in state for key in expected):
            return prefix
    return None


def packaged_weights(
    package: str, subdir: str, file: str, backbone: str, install: str, also: str = ""
) -> Path:
    """The weights ``file`` under ``subdir`` of the installed Python ``package``; else MissingWeightsError for
    ``backbone`` naming where it was expected, the ``install`` command, ``also`` (another source) and the
    local-file option."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / subdir / file
        if path.is_file():
            return path
        expected = str(path)
    else:
        expected = f"<site-packages>/{package}/{subdir}/{file}"
    raise MissingWeightsError(
        f"No pretrained weights for backbone {backbone!r}: expected {expected}. Install them with `{install}` "
        f"(or `make install`), {also + ', ' if also else ''}{LOCAL_HINT}."
    )
