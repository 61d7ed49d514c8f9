"""The LightningDataModule: split folders -> records -> datasets -> loaders."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader

from ..atomic import atomic_write_text
from ..crop import apply_matrix, to_normalised
from ..datatypes import collate_samples
from ..evaluation.metrics import normalisation_for
from ..schemes import SchemeSpec, get_scheme
from .crop_cache import attach_crop_cache
from .dataset import ON_BAD_SAMPLE, LandmarkDataset
from .formats import PATH_ARGUMENTS, READERS, read_pts_folder
from .records import DEFAULT_MAX_IMAGE_PIXELS, AnnotationError, FaceRecord, checked, report
from .sampler import EpochSampler
from .transforms import CropAugmentation, occlusion_augmentation, photometric_augmentation

log = logging.getLogger(__name__)


class DataRootError(FileNotFoundError):
    """`data.root` is missing or incomplete; the message says how to obtain the data."""


class DataValidationError(ValueError):
    """Bad faces in a split: the message lists every bad file with its reason."""


class EvalLoader(DataLoader):
    """An evaluation loader that leaves out the batches whose every face was skipped (None, see
    `collate_samples`): Lightning's evaluation loop, unlike its training loop, does not."""

    def __iter__(self):
        return (batch for batch in super().__iter__() if batch is not None)


def source_paths(source: str | Mapping) -> list[str]:
    """The paths under data.root that a split source reads."""
    if isinstance(source, str):
        return [source]
    return [str(source[key]) for key in PATH_ARGUMENTS if source.get(key) is not None]


class LandmarkDataModule(L.LightningDataModule):
    """Faces in the 300W on-disk layout (an image and a `.pts` per face, one folder per subset).

    `splits` maps each split name to the sources (relative to `root`) it is made of. A source is a
    folder in the 300W layout, so 300W's `common` is `[lfpw/testset, helen/testset]` and the synthetic
    `full` is `[common, challenging]`, or a benchmark's annotation file read by a named reader:
    `{reader: wflw, annotation_file: ..., image_root: ...}` (see `formats.READERS`).
    With `synthetic` set, the folders are generated under `root` on first use.

    `scheme` is the landmark scheme (`odn_lightning.schemes`): a built-in name, a name of
    conf/scheme/ or a declaration; the point count, flip pairs and eye points of every face come from it. `nme_normalisation` is the benchmark's convention for dividing
    errors, kept with the dataset's config; the model config's `nme_normalisation` defaults to it.

    With `cache`, each split's faces are cut once into a memory-mapped crop cache under `cache_dir`
    (None: `<root>/.cache`), see `crop_cache`; `cache_resolution` is the training patches' pixels per
    crop pixel.
    """

    def __init__(
        self,
        name: str,
        root: str,
        splits: Mapping[str, Sequence[str]],
        train_split: str = "train",
        val_split: str = "val",
        test_splits: Sequence[str] = ("common", "challenging", "full"),
        scheme: SchemeSpec = "ibug68",
        image_size: int = 224,
        crop_margin: float = 0.25,
        crop_box: str = "landmarks",
        nme_normalisation: str | Mapping[str, str] = "inter_ocular",
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        augmentation: Mapping | None = None,
        photometric: Mapping | None = None,
        occlusion: Mapping | None = None,
        synthetic: Mapping | None = None,
        how_to_get: str = "",
        on_bad_sample: str = "error",
        bad_samples_dir: str | None = None,
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        expected_counts: Mapping[str, int] | None = None,
        expected_labels: Mapping[str, Mapping[str, int]] | None = None,
        seed: int = 0,
        cache: bool = True,
        cache_dir: str | None = None,
        cache_resolution: float = 1.25,
    ) -> None:
        super().__init__()
        # Plain containers only (no OmegaConf objects): checkpoints hold these and load weights-only.
        self.save_hyperparameters(logger=False)
        for key, value in self.hparams.items():
            if isinstance(value, (DictConfig, ListConfig)):
                self.hparams[key] = OmegaConf.to_container(value, resolve=True)
        if on_bad_sample not in ON_BAD_SAMPLE:
            raise ValueError(f"data.on_bad_sample={on_bad_sample!r}; choose one of {ON_BAD_SAMPLE}")
        if max_image_pixels is not None and (type(max_image_pixels) is not int or max_image_pixels < 1):
            raise ValueError(
                f"data.max_image_pixels={max_image_pixels!r}; give a positive whole number of pixels, "
                "or null for no limit"
            )
        self.scheme = get_scheme(scheme)
        for split in (train_split, val_split, *test_splits):
            if split not in splits:
                raise ValueError(f"data split '{split}' is not defined in data.splits ({sorted(splits)})")
        self.root = Path(root)
        self.datasets: dict[str, LandmarkDataset] = {}
        self._resume_at: tuple[int, int] | None = None

    @property
    def eval_split_names(self) -> list[str]:
        return [self.hparams.val_split, *self.hparams.test_splits]

    @property
    def test_split_names(self) -> list[str]:
        return list(self.hparams.test_splits)

    def prepare_data(self) -> None:
        synthetic = self.hparams.synthetic
        if synthetic is not None and synthetic.get("generate", True):
            from .synthetic import ensure_synthetic

            ensure_synthetic(
                self.root,
                dict(synthetic["sizes"]),
                seed=synthetic["seed"],
                image_size=synthetic["image_size"],
            )
        self._check_root()

    def _check_root(self) -> None:
        hint = self.hparams.how_to_get.strip()
        if not self.root.is_dir():
            raise DataRootError(f"data.root={self.root} does not exist. {hint}".strip())
        for split, sources in self.hparams.splits.items():
            for source in sources:
                for path in source_paths(source):
                    if not (self.root / path).exists():
                        raise DataRootError(
                            f"data.root={self.root} has no '{path}' (needed by split '{split}'). {hint}".strip()
                        )

    def records(
        self, split: str, problems: list[AnnotationError] | None = None, decode_images: bool = False
    ) -> list[FaceRecord]:
        """The faces of a split; bad ones raise, or go to `problems` when it is a list. Images are
        checked by their header (size within `max_image_pixels` included), or fully decoded with
        `decode_images` (finds truncated files)."""
        limit = self.hparams.max_image_pixels
        return [
            record
            for source in self.hparams.splits[split]
            for record in checked(
                self._read(source, problems), self.scheme.num_landmarks, problems, decode_images, limit
            )
        ]

    def _read(self, source: str | Mapping, problems: list[AnnotationError] | None) -> list[FaceRecord]:
        if isinstance(source, str):
            return read_pts_folder(self.root / source, problems)
        arguments = dict(source)
        name = arguments.pop("reader", None)
        if name not in READERS:
            raise ValueError(
                f"data.splits source {dict(source)} names reader {name!r}; use one of {sorted(READERS)}"
            )
        for key in PATH_ARGUMENTS:
            if arguments.get(key) is not None:
                arguments[key] = self.root / arguments[key]
        try:
            return READERS[name](**arguments, problems=problems)
        except AnnotationError as err:  # the file as a whole is unreadable: all its faces are bad
            report(err, problems)
            return []

    def read_source(self, source: str | Mapping) -> list[FaceRecord]:
        """The faces of one split source (`data.splits` entry) as its annotations give them, images
        neither opened nor checked (scoring predictions needs no pixels); a bad annotation raises."""
        return self._read(source, None)

    def checked_records(self, split: str) -> list[FaceRecord]:
        """The good faces of a split: bad ones stop the run with a full report, or are skipped
        (`on_bad_sample=skip`) with their list written to `bad_samples_dir` (where the dataset adds
        the images that fail to decode later, when their samples are made)."""
        problems: list[AnnotationError] = []
        records = self.records(split, problems)
        if not problems:
            return records
        report = "\n".join(f"  {problem}" for problem in problems)
        if self.hparams.on_bad_sample == "error":
            raise DataValidationError(
                f"split '{split}' of data.root={self.root} has {len(problems)} bad faces:\n{report}\n"
                "Fix or remove them, or leave them out with data.on_bad_sample=skip."
            )
        where = "the log above"
        if self.hparams.bad_samples_dir:
            path = Path(self.hparams.bad_samples_dir) / f"bad_samples_{split}.txt"
            atomic_write_text(path, "".join(f"{problem}\n" for problem in problems))
            where = str(path)
        log.warning(
            f"split '{split}': skipped {len(problems)} bad faces (data.on_bad_sample=skip); list in {where}"
        )
        if not self.hparams.bad_samples_dir:
            log.warning(report)
        return records

    def count_mismatches(self, counts: Mapping[str, int]) -> dict[str, tuple[int, int]]:
        """Splits whose size differs from the published one: {split: (found, expected)}."""
        expected = self.hparams.expected_counts or {}
        return {s: (counts[s], n) for s, n in expected.items() if s in counts and counts[s] != n}

    def label_mismatches(self, labels: Mapping[str, Mapping[str, int]]) -> dict[str, tuple[dict, dict]]:
        """Splits whose per-point label counts (`records.label_counts`) differ from the published ones:
        {split: (found, expected)}."""
        expected = self.hparams.expected_labels or {}
        return {
            s: (dict(labels[s]), dict(n))
            for s, n in expected.items()
            if s in labels and dict(labels[s]) != dict(n)
        }

    @property
    def cache_dir(self) -> Path:
        """Where the crop caches go: `data.cache_dir`, else `<data.root>/.cache`."""
        return Path(self.hparams.cache_dir) if self.hparams.cache_dir else self.root / ".cache"

    def _dataset(self, split: str, train: bool, cache: bool = True) -> LandmarkDataset:
        hp = self.hparams
        augmentation = photometric = occlusion = None
        if train:
            augmentation = CropAugmentation(**(hp.augmentation or {}))
            photometric = photometric_augmentation(**(hp.photometric or {}))
            occlusion = occlusion_augmentation(**(hp.occlusion or {}))
        records = self.checked_records(split)
        if not train:
            self._check_normaliser(split, records)
        dataset = LandmarkDataset(
            records,
            self.scheme,
            split,
            hp.image_size,
            hp.crop_margin,
            augmentation,
            photometric,
            occlusion,
            hp.crop_box,
            occluder_masks=not train,
            on_bad_sample=hp.on_bad_sample,
            bad_samples_dir=hp.bad_samples_dir,
            max_image_pixels=hp.max_image_pixels,
        )
        if cache and hp.cache:
            attach_crop_cache(dataset, self.cache_dir, hp.name, hp.cache_resolution)
        return dataset

    def _check_normaliser(self, split: str, records: list[FaceRecord]) -> None:
        # Said before training starts, not at the first validation batch.
        normalisation = normalisation_for(self.hparams.nme_normalisation, split)
        lacking = [r for r in records if r.box_size is None]
        if normalisation == "box_size" and lacking:
            raise DataValidationError(
                f"split '{split}' is normalised by box_size, the dataset's own per-face box size (HRNet's "
                f"AFLW CSV column), but {len(lacking)} faces have none (first: {lacking[0].source}); set "
                "data.nme_normalisation to box_width, box_max_side or box_sqrt_area"
            )

    def setup(self, stage: str | None = None) -> None:
        self._check_root()
        hp = self.hparams
        by_stage = {"fit": [hp.train_split, hp.val_split], "validate": [hp.val_split], "test": hp.test_splits}
        wanted = by_stage.get(stage) or [hp.train_split, hp.val_split, *hp.test_splits]
        for split in wanted:
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split, train=split == hp.train_split)

    def mean_shape(self) -> torch.Tensor:
        """Mean training shape in the evaluation crop's normalised frame: the trivial baseline."""
        dataset = self.datasets.get(self.hparams.train_split) or self._dataset(
            self.hparams.train_split, False, cache=False
        )
        shapes = np.stack(
            [
                to_normalised(
                    apply_matrix(dataset.eval_matrix(r), r.landmarks.astype(np.float64)), dataset.image_size
                )
                for r in dataset.records
            ]
        )
        if all(r.located is None for r in dataset.records):
            return torch.from_numpy(shapes.mean(axis=0).astype(np.float32))
        # Points without a position (placeholders) stay out of their point's mean.
        located = np.stack(
            [np.ones(len(r.landmarks), bool) if r.located is None else r.located for r in dataset.records]
        )
        weights = located[..., None].astype(np.float64)
        mean = (shapes * weights).sum(axis=0) / np.maximum(weights.sum(axis=0), 1.0)
        return torch.from_numpy(mean.astype(np.float32))

    def _loader(self, split: str, train: bool) -> DataLoader:
        hp = self.hparams
        dataset = self.datasets[split]
        return (DataLoader if train else EvalLoader)(
            dataset,
            batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),
            sampler=self._train_sampler(len(dataset)) if train else None,
            drop_last=train and len(dataset) > hp.batch_size,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.num_workers > 0,
            collate_fn=collate_samples,
        )

    def _train_sampler(self, size: int) -> EpochSampler:
        """The training order and augmentation seeds (`EpochSampler`); a resumed fit starts where its
        checkpoint left the epoch under way."""
        trainer = self.trainer  # under DDP, this process's share of each epoch
        rank, replicas = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = EpochSampler(size, self.hparams.seed, rank=rank, replicas=replicas)
        if self._resume_at is not None:
            sampler.resume(*self._resume_at)
            self._resume_at = None
        return sampler

    def state_dict(self) -> dict[str, int]:
        """Where training stands in its epoch, for checkpoints: the epoch and the faces trained on."""
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return {}
        epochs = trainer.fit_loop.epoch_progress.current
        if epochs.processed >= epochs.started:  # between epochs: the next one starts at its beginning
            return {"epoch": epochs.processed, "position": 0}
        # In an epoch: its processed batches (a checkpoint written in on_train_batch_end counts the
        # batch under way as done, as Lightning does when it restores one).
        # Under DDP the order is dealt out face by face to the processes (EpochSampler): every
        # process's batches count.
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": epochs.processed, "position": batches * self.hparams.batch_size * trainer.world_size}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        # Lightning restores this before it builds the training loader.
        if "epoch" in state_dict:
            self._resume_at = (int(state_dict["epoch"]), int(state_dict["position"]))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.train_split, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.val_split, train=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(split, train=False) for split in self.hparams.test_splits]
