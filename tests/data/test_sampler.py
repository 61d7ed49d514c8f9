"""The training sampler under DDP: each process's share of an epoch is what Lightning's own wrapper
would deal it, and a resumed epoch continues each process's share where it stopped."""

from __future__ import annotations

import pytest
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

from odn_lightning.data.sampler import EpochSampler


@pytest.mark.parametrize("size", [11, 12])
def test_each_process_gets_the_faces_lightnings_wrapper_would_deal_it(size):
    for rank in (0, 1):
        ours = EpochSampler(size, seed=3, rank=rank, replicas=2)
        wrapped = DistributedSamplerWrapper(
            EpochSampler(size, seed=3), num_replicas=2, rank=rank, shuffle=False
        )
        for epoch in (0, 1):
            ours.set_epoch(epoch)
            wrapped.set_epoch(epoch)
            wrapped.dataset._sampler.set_epoch(epoch)
            assert list(ours) == list(wrapped)
            assert len(ours) == len(wrapped) == -(-size // 2)
    # Together the processes see every face of the epoch.
    shares = [list(EpochSampler(size, seed=3, rank=rank, replicas=2)) for rank in (0, 1)]
    assert {key.index for share in shares for key in share} == set(range(size))


def test_a_resumed_epoch_continues_each_processs_share():
    size, batch, replicas = 24, 4, 2
    for rank in range(replicas):
        whole = list(EpochSampler(size, seed=0, rank=rank, replicas=replicas))
        resumed = EpochSampler(size, seed=0, rank=rank, replicas=replicas)
        resumed.resume(0, 1 * batch * replicas)  # one batch of each process done
        assert list(resumed) == whole[batch:]
        assert list(resumed) == whole  # the next pass is the whole epoch again


def test_a_rank_outside_the_processes_is_refused():
    with pytest.raises(ValueError, match="rank 2 of 2"):
        EpochSampler(10, rank=2, replicas=2)
