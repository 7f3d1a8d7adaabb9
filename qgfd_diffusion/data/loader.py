"""Batching: a resumable loader whose batches are the raw batch of one modality.

``make_dataloader`` builds a ``ResumableDataLoader`` whose ``ResumableSampler`` draws one seeded
permutation per epoch. Its state {"seed", "epoch", "position", ...} is counted when a batch
reaches the caller (not when workers prefetch it), so saving it after k batches and loading it
into a fresh loader continues with exactly the batches an uninterrupted run sees. Batches are
collated by the function the modality's adapters declare (``adapters.collate_for``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..adapters import collate_for


# ----------------------------------------------------------------------------- resumable order
def _epoch_seed(seed: int, epoch: int) -> int:
    """Independent 63-bit generator seed per (seed, epoch) pair."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


class ResumableSampler(Sampler[int]):
    """One seeded permutation per epoch (a torch.Generator seeded from (seed, epoch)), resumable
    from `position`, the number of items of the current epoch already delivered.

    `__iter__` yields the rest of the current epoch and does not move the state: the loader
    calls `advance` when a batch reaches the caller and `next_epoch` when an epoch ends.
    """

    def __init__(self, num_items: int, seed: int = 0, shuffle: bool = True) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.num_items, self.seed, self.shuffle = num_items, seed, shuffle
        self.epoch, self.position = 0, 0

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_items))
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        return torch.randperm(self.num_items, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch)[self.position :])

    def __len__(self) -> int:
        return self.num_items  # a whole epoch, so DataLoader's len is batches per epoch

    def advance(self, num_items: int) -> None:
        self.position = min(self.position + num_items, self.num_items)

    def next_epoch(self) -> None:
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int | bool]:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "num_items": self.num_items,
            "shuffle": self.shuffle,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key in ("num_items", "shuffle"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"sampler state has {key}={state[key]!r} but this loader has "
                    f"{getattr(self, key)!r}: not the same dataset/config"
                )
        self.seed, self.epoch, self.position = (
            int(state[key]) for key in ("seed", "epoch", "position")
        )


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `ResumableSampler` that counts batches as they are handed out, so
    `state_dict()` is exact even when workers prefetch ahead. Iterating runs the rest of the
    current epoch; running to its end moves the sampler to the next epoch."""

    sampler: ResumableSampler

    def __iter__(self) -> Iterator[Any]:
        for batch in super().__iter__():
            self.sampler.advance(self.batch_size)
            yield batch
        self.sampler.next_epoch()

    def state_dict(self) -> dict[str, int | bool]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def make_dataloader(
    dataset: datasets.Dataset,
    modality: str,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
) -> ResumableDataLoader:
    """A resumable loader whose batches are the raw batch of `modality`: the collate function
    its adapters declare (`collate_for`; unknown modalities raise, listing the known ones)."""
    collate = collate_for(modality)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sampler = ResumableSampler(len(dataset), seed=seed, shuffle=shuffle)
    return ResumableDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=collate,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),  # worker seeds
    )


def infinite_batches(loader: ResumableDataLoader) -> Iterator[Any]:
    """Batches over epoch after epoch, forever, with the loader's state kept current."""
    while True:
        empty_epoch = loader.sampler.position == 0
        for batch in loader:
            empty_epoch = False
            yield batch
        if empty_epoch:
            raise ValueError(
                f"an epoch of {loader.sampler.num_items} items gives no batch of "
                f"{loader.batch_size} (drop_last={loader.drop_last})"
            )
