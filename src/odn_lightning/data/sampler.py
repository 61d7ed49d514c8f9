"""The training order and every sample's random draws as a function of (run seed, epoch, position).

A run's data then does not depend on the state of any random generator, nor on the number of loader
workers: a run resumed from a checkpoint, at an epoch's end or in the middle of one, sees exactly the
faces and augmentations the uninterrupted run saw (mmengine's `DefaultSampler` seeds its order the
same way; here the augmentation seeds come with the order).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch.utils.data import DistributedSampler

# torch.randint's exclusive upper bound for a sample's seed (NumPy and albumentations take 32 bits).
SEED_BOUND = 2**31 - 3


class SampleKey(NamedTuple):
    """What the training sampler hands the dataset: which face, and the seed of its random draws."""

    index: int
    seed: int


class EpochSampler(DistributedSampler):
    """Shuffles `size` faces anew each epoch and gives each a seed, both drawn from a generator seeded
    by (seed, epoch) alone. Lightning calls `set_epoch` before each epoch (as for DistributedSampler);
    `resume(epoch, position)` makes the next pass start at a face of an epoch under way.

    Under DDP (`replicas` processes) the epoch's order is dealt out face by face, process `rank` taking
    faces rank, rank + replicas, ..., the order padded by its first faces to a multiple of `replicas`:
    what Lightning's DistributedSamplerWrapper does with a sampler it wraps (a DistributedSampler
    without shuffling). It is a DistributedSampler so that Lightning keeps it instead of wrapping it:
    the wrapper indexes a list as long as the whole epoch, and a resumed epoch's pass is shorter.
    """

    def __init__(
        self, size: int, seed: int = 0, shuffle: bool = True, rank: int = 0, replicas: int = 1
    ) -> None:
        # Not DistributedSampler.__init__: it wants a dataset and asks torch.distributed for the rest.
        if not 0 <= rank < replicas:
            raise ValueError(f"rank {rank} of {replicas} processes")
        self.size = size
        self.seed = int(seed)
        self.shuffle = shuffle
        self.rank, self.num_replicas = rank, replicas
        self.drop_last = False
        self.num_samples = math.ceil(size / replicas)  # per process, as DistributedSampler counts
        self.total_size = self.num_samples * replicas
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0  # a resume position belongs to the epoch it was given for
        self.epoch = epoch

    def resume(self, epoch: int, position: int) -> None:
        """Start the next pass at face `position` of `epoch`, counted over all processes (the faces
        before it were trained on)."""
        self.epoch, self.start = epoch, position

    def keys(self, epoch: int) -> list[SampleKey]:
        """Every key of an epoch, in order (all processes' faces)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.size, generator=generator) if self.shuffle else torch.arange(self.size)
        seeds = torch.randint(0, SEED_BOUND, (self.size,), generator=generator)
        return [SampleKey(int(i), int(s)) for i, s in zip(order, seeds, strict=True)]

    def __iter__(self) -> Iterator[SampleKey]:
        start, self.start = self.start, 0
        keys = self.keys(self.epoch)
        keys += keys[: self.total_size - self.size]
        yield from keys[start + self.rank :: self.num_replicas]

    def __len__(self) -> int:
        # The whole epoch, also when resuming inside it: Lightning counts the resumed epoch's batches
        # from where the checkpoint left it.
        return self.num_samples
