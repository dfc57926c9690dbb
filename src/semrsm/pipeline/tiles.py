"""Tiles: tile i of n of one layer's N(N-1)/2 sample pairs, for spreading a matching over jobs.

The pairs i < j in row-major order (0,1), (0,2), ..., (1,2), ... are cut into ``num_tiles`` contiguous runs whose
sizes differ by at most one pair; the cut depends on (N, num_tiles) only. A run is a partial row, whole rows and
a partial row; ``Tile.pair_blocks`` turns it into the engine's pair blocks (row x column ranges, memory-bounded
like ``plan_blocks``) that compute exactly its pairs. A finished tile is a part file ``<index>-of-<num_tiles>.npz``
holding its matched scores in pair order; the parts of one partition assemble into the layer's ``MatchedScores``.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semrsm.similarity import MatchedScores, PairBlock
from semrsm.similarity.engine import pair_block_side
from semrsm.storage import CorruptFileError, atomic_save_npz, read_npz

log = logging.getLogger(__name__)

PART_NAME = re.compile(r"(\d+)-of-(\d+)\.npz")


def pair_count(num_samples: int) -> int:
    """Number of pairs i < j of ``num_samples`` samples."""
    return num_samples * (num_samples - 1) // 2


def _row_offset(num_samples: int, row: int) -> int:
    """Position of pair (row, row + 1) in row-major order: the pairs of all earlier rows."""
    return row * (num_samples - 1) - row * (row - 1) // 2


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_tile_choice(
    tile_index, num_tiles, prefix: str = "", tiles_prefix: str | None = None
) -> tuple[int, int]:
    """(tile_index, num_tiles) as ints; ValueError naming them (after ``prefix``, e.g. "experiment.", and
    ``tiles_prefix`` for num_tiles, default ``prefix``) unless 0 <= tile_index < num_tiles."""
    tiles_prefix = prefix if tiles_prefix is None else tiles_prefix
    if not _is_int(num_tiles) or num_tiles < 1:
        raise ValueError(
            f"{tiles_prefix}num_tiles must be a positive integer, got {tiles_prefix}num_tiles={num_tiles!r}"
        )
    if not _is_int(tile_index) or not 0 <= tile_index < num_tiles:
        raise ValueError(
            f"{prefix}tile_index must be an integer in 0..{num_tiles - 1} for {tiles_prefix}num_tiles={num_tiles}, "
            f"got {prefix}tile_index={tile_index!r}"
        )
    return int(tile_index), int(num_tiles)


@dataclass(frozen=True)
class Tile:
    """Tile ``index`` of ``num_tiles``: the pairs ``start <= p < stop`` in row-major order of ``num_samples``."""

    num_samples: int
    index: int
    num_tiles: int

    def __post_init__(self) -> None:
        check_tile_choice(self.index, self.num_tiles)
        pairs = pair_count(self.num_samples)
        if self.num_tiles > pairs:
            raise ValueError(
                f"num_tiles={self.num_tiles} exceeds the {pairs} pairs of {self.num_samples} samples "
                "(a tile would be empty); use fewer tiles"
            )

    @property
    def start(self) -> int:
        return self.index * pair_count(self.num_samples) // self.num_tiles

    @property
    def stop(self) -> int:
        return (self.index + 1) * pair_count(self.num_samples) // self.num_tiles

    @property
    def num_pairs(self) -> int:
        return self.stop - self.start

    @property
    def file_name(self) -> str:
        return f"{self.index}-of-{self.num_tiles}.npz"

    def segments(self) -> list[tuple[int, int, int]]:
        """(row i, first column, end column) of every row the tile touches, in pair order."""
        n = self.num_samples
        row = bisect.bisect_right(range(n), self.start, key=lambda r: _row_offset(n, r)) - 1
        position, segments = self.start, []
        while position < self.stop:
            end = min(self.stop, _row_offset(n, row + 1))
            first = row + 1 + position - _row_offset(n, row)
            segments.append((row, first, first + end - position))
            position, row = end, row + 1
        return segments

    def pair_blocks(
        self, bytes_per_pair: int, block_size: int | None = None, align: int = 1
    ) -> list[PairBlock]:
        """The engine's pair blocks computing exactly this tile's pairs, each at most ``block_size``^2 pairs of
        products (default as ``plan_blocks``: about N / 8, at most what fits 128 MiB at ``bytes_per_pair``, a
        multiple of ``align``); whole rows are cut at multiples of the block side, so aligned blocks of ``align``
        samples are not split between pair blocks."""
        n = self.num_samples
        side = pair_block_side(n, bytes_per_pair, block_size, align)
        whole_rows, blocks = [], []
        width = side * side  # a single row's products may take a whole block's budget
        for row, first, end in self.segments():
            if first == row + 1 and end == n:
                whole_rows.append(row)
            else:
                blocks += [
                    PairBlock(range(row, row + 1), range(c, min(c + width, end)))
                    for c in range(first, end, width)
                ]
        if whole_rows:  # contiguous: only the first and last segment can be partial
            bottom = whole_rows[-1] + 1
            for top, stop in _cuts(whole_rows[0], bottom, side):
                rows = range(top, stop)
                for left, right in _cuts(top, n, side):
                    if right - 1 > rows[0]:  # the block holds a pair i < j
                        blocks.append(PairBlock(rows, range(left, right)))
        return blocks

    def take(self, scores: torch.Tensor | np.ndarray) -> np.ndarray:
        """This tile's entries of an (N, N) matrix, in pair order."""
        matrix = np.asarray(scores)
        return np.concatenate([matrix[row, first:end] for row, first, end in self.segments()])

    def put(self, matrix: np.ndarray, values: np.ndarray) -> None:
        """Write this tile's values (pair order) into both triangles of an (N, N) matrix."""
        position = 0
        for row, first, end in self.segments():
            chunk = values[position : position + end - first]
            matrix[row, first:end] = chunk
            matrix[first:end, row] = chunk
            position += end - first


def _cuts(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """start..stop cut at the multiples of ``size`` in between: (first, end) of each piece."""
    edges = [start, *range((start // size + 1) * size, stop, size), stop]
    return list(zip(edges[:-1], edges[1:], strict=False))


def save_part(directory: Path, tile: Tile, matched: MatchedScores) -> Path:
    """Atomically write ``tile``'s matched scores (and the squared norms) to ``directory/<index>-of-<n>.npz``."""
    values = tile.take(matched.scores)
    if np.isnan(values).any():
        raise ValueError(f"the matched scores lack pairs of tile {tile.index} of {tile.num_tiles}")
    return atomic_save_npz(directory / tile.file_name, values=values, sq_norms=matched.sq_norms.numpy())


def load_part(directory: Path, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """(values in pair order, squared norms) of ``tile``'s part file; CorruptFileError (naming it) if it is
    truncated, fails its CRC or does not fit the tile."""
    path = directory / tile.file_name
    data = read_npz(path, ("values", "sq_norms"))
    values, sq_norms = data["values"], data["sq_norms"]
    if values.shape != (tile.num_pairs,) or sq_norms.shape != (tile.num_samples,):
        raise CorruptFileError(
            path,
            f"{values.shape} scores and {sq_norms.shape} norms, expected ({tile.num_pairs},) and "
            f"({tile.num_samples},) for {tile.num_samples} samples",
        )
    return values, sq_norms


def finished_tiles(directory: Path, num_samples: int) -> dict[int, list[Tile]]:
    """The tiles with a readable part file in ``directory``, per num_tiles (empty when there is none). A corrupt
    or truncated part is removed, with a warning naming it, so that its tile counts as missing."""
    found: dict[int, list[Tile]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.iterdir()):
        if match := PART_NAME.fullmatch(path.name):
            index, num_tiles = int(match[1]), int(match[2])
            try:
                tile = Tile(num_samples, index, num_tiles)
            except ValueError as error:
                raise ValueError(
                    f"tile part {path} does not fit {num_samples} samples ({error}); delete it"
                ) from None
            try:
                load_part(directory, tile)
            except CorruptFileError as error:
                log.warning("RSM tiles: %s; its tile will be computed again", error)
                path.unlink()
                continue
            found.setdefault(num_tiles, []).append(tile)
    for tiles in found.values():
        tiles.sort(key=lambda tile: tile.index)
    return found


def most_complete_partition(directory: Path, num_samples: int) -> tuple[list[Tile], list[Tile]]:
    """(finished, missing) tiles of the partition whose parts in ``directory`` cover the most pairs (ties: the
    fewest tiles); ([], []) when there are no parts."""
    found = finished_tiles(directory, num_samples)
    if not found:
        return [], []
    num_tiles = max(sorted(found), key=lambda n: sum(tile.num_pairs for tile in found[n]))
    finished = found[num_tiles]
    done = {tile.index for tile in finished}
    missing = [Tile(num_samples, i, num_tiles) for i in range(num_tiles) if i not in done]
    return finished, missing


def assemble_parts(directory: Path, tiles: list[Tile]) -> MatchedScores:
    """MatchedScores from the part files of ``tiles`` (one partition): NaN at the pairs of the other tiles."""
    if not tiles:
        raise ValueError(f"no tile parts to assemble in {directory}")
    n = tiles[0].num_samples
    scores = np.full((n, n), np.nan)
    for tile in tiles:
        values, sq_norms = load_part(directory, tile)
        tile.put(scores, values)
    np.fill_diagonal(scores, sq_norms)
    return MatchedScores(torch.from_numpy(scores), torch.from_numpy(sq_norms))
