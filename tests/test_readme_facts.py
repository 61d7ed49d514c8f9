"""Every default, setting and number README states that lives in `conf/`, the Makefile or the committed
results under `experiments/` is checked against it: each test finds the statement by its words, reads
the number out of README and compares it with the composed config or the committed file, so a change
on either side fails here (README once said `data.occlusion.probability=0.5` where the default was 0).
A number README rounds must be the source's value rounded to the digits README shows.
Checked elsewhere: the config-group options and the bare-train recipe (test_config.py), the
conventions table (data/test_conventions.py), the ONNX consumer example (inference/)."""

from __future__ import annotations

import functools
import json
import re
import statistics
import tempfile
from pathlib import Path

import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from odn_lightning.config import CONFIG_DIR
from odn_lightning.schemes import get_scheme

from .helpers.configs import compose_config

ROOT = Path(CONFIG_DIR).parent
EXPERIMENTS = ROOT / "experiments"
RAW = (ROOT / "README.md").read_text()
TEXT = " ".join(RAW.split())  # README's prose wraps anywhere: match on single spaces
MAKEFILE = (ROOT / "Makefile").read_text()
N = r"(\d+(?:\.\d+)?(?:e-?\d+)?)"  # a number README states


def stated(pattern: str, text: str | None = None) -> tuple[str, ...]:
    match = re.search(pattern, TEXT if text is None else text)
    assert match, f"README no longer says /{pattern}/: update the statement and this test together"
    return match.groups()


def rounds_to(written: str, value: float) -> bool:
    """`written` is `value` rounded to the decimals it shows."""
    decimals = len(written.split(".")[1]) if "." in written else 0
    return abs(float(written) - value) <= 0.5 * 10**-decimals + 1e-9


def numbers(cell: str) -> list[str]:
    return re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", cell)


def table(text: str, header_start: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header line starts `header_start`, cells unbolded."""
    lines = text.split(header_start, 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [[c.strip().replace("**", "") for c in line.strip().strip("|").split("|")] for line in lines]


def load_json(path: str) -> dict:
    return json.loads((EXPERIMENTS / path).read_text())


@functools.cache
def _composed(name: str, overrides: tuple[str, ...]) -> DictConfig:
    return compose_config(name, list(overrides), Path(tempfile.gettempdir()) / "odn-readme-facts")


def config(name: str, *overrides: str) -> DictConfig:
    cfg = _composed(name, overrides)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} resolves against the config asked for
    return cfg


def as_written(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, ListConfig)):
        return "[" + ",".join(as_written(v) for v in value) + "]"
    return str(value)


# (id, command composed, README's words with the values as groups, the keys those values are; a key
# `a|b`: both; `key%`: README gives a percentage; `key=literal`: what README's words, not a group, say).
CONFIG_FACTS = [
    ("objective", "train", rf"`model\.objective\.\{{alpha,beta,gamma,lam,eta\}}`, defaults {N}, {N}, {N}, {N}, {N}\)",
     "model.objective.alpha model.objective.beta model.objective.gamma model.objective.lam model.objective.eta"),
    ("quickstart", "train experiment=quickstart", rf"from scratch on {N} synthetic faces \({N} px crops, {N} epochs\)",
     "data.synthetic.sizes.train data.image_size trainer.max_epochs model.net.pretrained=false"),
    ("paper-crops", "train experiment=paper_300w", rf"`conf/experiment/_paper\.yaml`\): {N} px crops, ImageNet-pretrained",
     "data.image_size model.net.pretrained=true"),
    ("paper-weights", "train experiment=paper_300w", rf"alpha = gamma = lambda = {N}, eta = beta = {N}\.",
     "model.objective.alpha|model.objective.gamma|model.objective.lam model.objective.eta|model.objective.beta"),
    ("paper-schedule", "train experiment=paper_300w", rf"weight_penalty=(\w+)`\), batch {N}, one-cycle to a peak of {N}, {N} epochs",
     "model.objective.weight_penalty data.batch_size model.optimizer.lr trainer.max_epochs "
     "model.optimizer._target_=torch.optim.AdamW model.scheduler._target_=torch.optim.lr_scheduler.OneCycleLR"),
    ("paper-epochs", "train experiment=paper_aflw", rf"The paper recipes \(`experiment=paper_\*`, {N} epochs\)", "trainer.max_epochs"),
    ("occlusion-off", "train", rf"off by default and in the paper recipe, `data\.occlusion\.probability={N}`", "data.occlusion.probability"),
    ("occlusion-paper", "train experiment=paper_300w", rf"in the paper recipe, `data\.occlusion\.probability={N}`", "data.occlusion.probability"),
    ("crop", "train", rf"enlarged by `data\.crop_margin` \({N}%\) and resized to `data\.image_size` \({N}\)", "data.crop_margin% data.image_size"),
    ("crop-box", "train", r"`data\.crop_box=(\w+)`, the default", "data.crop_box"),
    ("byod-margin", "train", rf"`data\.crop_box=dataset` \(and `data\.crop_margin={N}`\)", "data.crop_margin"),
    ("augmentation", "train", rf"\(`data\.augmentation\.rotation`, ±{N}°\), scale \(±{N}%\), translation \(±{N}%\)",
     "data.augmentation.rotation data.augmentation.scale% data.augmentation.translation% data.augmentation.flip=true"),
    ("cache", "train", rf"\(`data\.cache=(\w+)`, the default; .*? at `data\.cache_resolution` \({N}\)", "data.cache data.cache_resolution"),
    ("max-pixels", "train", rf"`data\.max_image_pixels` \(default {N},", "data.max_image_pixels"),
    ("bad-files", "train", r"A training run stops on them before it trains; `data\.on_bad_sample=skip`", "data.on_bad_sample=error"),
    ("tags", "train", r"`tags=\[\.\.\.\]` \(default `(\[\w+\])`\)", "tags"),
    ("group", "train", r"`group` defaults to the dataset's name", "group=synthetic data.name=synthetic"),
    ("group-ablation", "train experiment=ablation", r"`table4-<data>` under `experiment=ablation`", "group=table4-synthetic"),
    ("optimized-metric", "train", r"optimises `optimized_metric` \(`([\w/]+)`\)", "optimized_metric"),
    ("extras", "train", r"`extras\.print_config` \(print the resolved config at the start; (\w+)\), `extras\.ignore_warnings` \((\w+)\)",
     "extras.print_config extras.ignore_warnings"),
    ("pictures", "train", rf"\(`pictures={N}` faces", "pictures"),
    ("thresholds", "train", rf"Both at {N} and {N} \(`model\.nme_thresholds=", "model.nme_thresholds.0 model.nme_thresholds.1"),
    ("summary", "train", rf"the mean-shape baseline's NME, AUC@{N}, FR@{N}\)", "model.nme_thresholds.0 model.nme_thresholds.1"),
    ("wandb", "train logger=wandb", r"`logger=wandb` .{0,60}? logs offline by default", "logger.wandb.offline=true"),
    ("trainer", "train", r"\| `trainer` \| `default` \((\w+)\)", "trainer.accelerator"),
    ("sgd", "train model/optimizer=sgd", rf"`sgd` \(Nesterov momentum {N};", "model.optimizer.momentum model.optimizer.nesterov=true"),
    ("ddp-cpu", "train trainer=ddp_cpu", rf"`ddp_cpu` \({N} processes on CPU", "trainer.devices trainer.accelerator=cpu"),
    ("overfit", "train debug=overfit", rf"`overfit` \({N} batches, no augmentation\)", "trainer.overfit_batches data.augmentation.rotation=0 "
     "data.augmentation.scale=0 data.augmentation.translation=0 data.augmentation.flip=false"),
    ("gpu", "train trainer=gpu", r"`trainer=gpu` \(16-bit mixed precision", "trainer.precision=16-mixed"),
    ("backbone", "train", r"`model=odn` \(the default\) is ResNet-18 \(timm\)",
     "model.net.backbone=resnet18 model.net.use_gm=true model.net.use_dm=true model.net.use_lm=true"),
    ("no-l1", "train model=odn_no_l1", rf"odn_no_l1 \(eta = {N}\)", "model.objective.eta"),
    ("readout-brnet", "train model=brnet", r"BRNet reads out with ResNet-18's global average pool", "model.net.readout=gap"),
    ("readout-modules", "train", rf"the module rows with `(conv_pool)` \(1x1 conv, {N}x\d+ pool", "model.net.readout model.net.readout_grid"),
    ("visibility", "train model=brnet_visibility", r"`brnet_visibility` \(BRNet with the per-landmark visibility head",
     "model.net.visibility_head=true model.net.use_gm=false model.net.use_dm=false model.net.use_lm=false"),
    ("stride", "train", rf"`model\.net\.output_stride=16` dilates .{{0,150}}? instead of the paper's S/{N},", "model.net.output_stride"),
    ("dm-initial-p", "train", r"`model\.net\.dm_initial_p=0\.95` starts .{0,40}? instead of about 0\.5", "model.net.dm_initial_p=null"),
    ("occlusion-weight", "train", r"off by default: `model\.objective\.occlusion_weight=1`", "model.objective.occlusion_weight=0"),
    ("coordinate-unit", "train", r"the crop's \[-1, 1\] frame \(see Coordinates below\), or with `model\.objective\.coordinate_unit=pixels`",
     "model.objective.coordinate_unit=normalised"),
    ("non-finite", "train", r"the term and the batch's images; `model\.on_non_finite=skip`", "model.on_non_finite=error"),
    ("check-finite", "train", rf"at each validation and epoch end \({N}, the default", "model.check_finite_every_n_steps"),
    ("channels-last", "train", r"channels-last convolutions \(`model\.channels_last`, on by default\)", "model.channels_last=true"),
    ("synthetic-sizes", "train", rf"Split sizes mirror 300W \(train {N}, common {N}, challenging {N};",
     "data.synthetic.sizes.train data.synthetic.sizes.common data.synthetic.sizes.challenging"),
    ("300w-sizes", "train data=w300", rf"Split sizes mirror 300W \(train {N}, common {N}, challenging {N};",
     "data.expected_counts.train data.expected_counts.common data.expected_counts.challenging"),
    ("aflw-boxes", "train data=aflw", r"Crops use the file's face boxes \(`data\.crop_box=(\w+)`\)", "data.crop_box"),
    ("merl-rav-val", "train data=merl_rav", rf"there `val` holds out every {N}th face of each trainset folder", "data.splits.val.0.every"),
    ("merl-rav-labels", "train data=merl_rav", rf"\(`train_all` {N} / {N} / {N}, `test` {N} / {N} / {N}\)",
     " ".join(f"data.expected_labels.{s}.{k}" for s in ("train_all", "test") for k in ("unoccluded", "externally_occluded", "self_occluded"))),
    ("job-names", "train", r"\(`(.)` and `(.)` rather than `=` and `,`",
     "hydra.job.config.override_dirname.kv_sep hydra.job.config.override_dirname.item_sep"),
    ("compare", "compare", r"leaving out the seed and what changes nothing measured", "replicate_keys=[seed]"),
    ("predict", "predict", rf"\(`batch_size={N}`, faces of several frames share a batch\).*?\(`refine={N}`;", "batch_size refine"),
    ("predict-device", "predict", r"`device=cuda` \(or `(\w+)`, the default\)", "device"),
    ("detector", "predict", r"\| `(\w+)` \(default\) \| dlib's CNN face detector", "hydra.runtime.choices.detector"),
    ("mmod", "predict", r"\(under its ~80 px; `detector\.upsample=1` finds faces from ~40 px", "detector.upsample=0"),
    ("hog", "predict detector=hog", r"`detector=hog detector\.upsample=0` makes HOG about 4x faster", "detector.upsample=1"),
    ("haar", "predict detector=haar", r"\| `haar` \| OpenCV's bundled Haar cascade, `([\w.]+)`", "detector.cascade"),
    ("export", "export", rf"# format=(\w+): odn\.onnx \+ odn\.onnx\.json.*?differ by more than {N} \(`verify_tolerance`\)",
     "format verify_tolerance"),
    ("ert", "ert", rf"cascade depth {N}, tree depth {N}, {N} trees per level, nu {N}, oversampling {N}, one thread\)",
     "ert.cascade_depth ert.tree_depth ert.num_trees_per_cascade_level ert.nu ert.oversampling_amount ert.num_threads=1"),
    ("gpu-check", "gpu_check", rf"runs `make bench` on it, {N} steps of the paper recipe \(ODN, {N} px, batch {N}\)",
     "steps image_size batch_size"),
    ("bench", "bench", rf"of every Table-4 row at batch {N} and {N} px.*?inference latency at batch {N} and {N} in eager PyTorch",
     "batch_size image_size inference.batch_sizes.0 inference.batch_sizes.1 inference.runtimes=[eager,torchscript,onnx]"),
    ("table4", "table4", rf"AUC and FR at {N}, each network's parameters", "threshold"),
    ("figure4", "figure4", rf"counts such a face as a failure over all {N};", "expected_faces"),
]  # fmt: skip


@pytest.mark.parametrize("fact", CONFIG_FACTS, ids=lambda fact: fact[0])
def test_readme_states_what_the_configs_hold(fact):
    _, command, pattern, keys = fact
    cfg, written = config(*command.split()), iter(stated(pattern))
    for spec in keys.split():
        spec, _, literal = spec.partition("=")
        text = literal or next(written)
        for key in spec.rstrip("%").split("|"):
            value = OmegaConf.select(cfg, key, throw_on_missing=True)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                ok = float(text) * (0.01 if spec.endswith("%") else 1) == pytest.approx(value)
            else:
                ok = text == as_written(value)
            assert ok, f"README says {key} is {text} ({command}); conf/ has {as_written(value)}"
    assert next(written, None) is None, "a value README states is not compared"


def test_mechanism_is_the_quickstart_with_a_finer_map():
    (stride,) = stated(r"the quickstart recipe with `model\.net\.output_stride=(\d+)`;")
    side, crop = stated(r"S/16 on a side \((\d+) x \d+ for (\d+)-px crops\)")
    quick = OmegaConf.to_container(config("train", "experiment=quickstart"))
    mechanism = OmegaConf.to_container(config("train", "experiment=mechanism"))
    assert mechanism["model"]["net"].pop("output_stride") == int(stride)
    assert quick["model"]["net"].pop("output_stride") != int(stride)
    for part in ("data", "model", "trainer", "callbacks", "seed"):
        assert mechanism[part] == quick[part], part
    assert quick["data"]["image_size"] == int(crop) and int(crop) // int(stride) == int(side)


def test_group_table_defaults_callbacks_and_paths():
    cfg, rows = config("train"), table(RAW, "| group | options |")
    defaults = {row[0].strip("`"): re.findall(r"`(\w+)` \(default", row[1]) for row in rows}
    groups = ("data", "model", "model/optimizer", "model/scheduler", "logger")
    choices = {g: [cfg.hydra.runtime.choices[g]] for g in groups}
    assert {g: o for g, o in defaults.items() if o} == choices
    callbacks = next(row[1] for row in rows if row[0] == "`callbacks`")
    count = {"four": 4, "five": 5, "six": 6}[stated(r"`default` \(all (\w+) below\)", callbacks)[0]]
    alone = re.findall(r"`(\w+)`", callbacks.split("each callback alone:")[1])
    assert sorted(cfg.callbacks) == sorted(alone) and len(alone) == count
    data, logs = stated(r"`paths\.data_dir` \(`(\w+)/`\), `paths\.log_dir` \(`(\w+)/`\) under")
    root = cfg.paths.root_dir
    assert (cfg.paths.data_dir, cfg.paths.log_dir) == (f"{root}/{data}", f"{root}/{logs}")
    (folder,) = stated(r"writes `data/synthetic/([\w-]+)/\{train,val,common,challenging\}`")
    assert cfg.data.root == f"{cfg.paths.data_dir}/synthetic/{folder}"


def test_gpu_check_runs_both_precisions_with_and_without_compile():
    precisions = stated(r"batch 32\) in `([\w-]+)` and `([\w-]+)`, each with and without `model\.compile`")
    variants = {(v.precision, v.compile is None) for v in config("gpu_check").variants}
    assert variants == {(p, eager) for p in precisions for eager in (True, False)}


def test_benchmark_table_gives_each_configs_points_and_published_split_sizes():
    for names, points, splits, *_ in table(RAW, "| `data=` | points | splits (published sizes) |"):
        for name, count in zip(re.findall(r"`(\w+)`", names), numbers(points), strict=True):
            data = config("train", f"data={name}").data
            assert get_scheme(data.scheme).num_landmarks == int(count), name
            if splits == "as above":
                continue
            published = data.expected_counts or data.synthetic.sizes
            pairs = re.findall(r"`?(\w+)`? (\d+)\b", splits)
            pairs += [(split, n) for n, split in re.findall(r"(\d+): `(\w+)`", splits)]
            assert all(published[s] == int(n) for s, n in pairs if s in published), f"{name}: {splits}"
            assert {int(n) for n in numbers(splits)} <= set(published.values()), f"{name}: {splits}"


def test_byod_yaml_blocks_are_the_shipped_files():
    scheme = stated(r"(?s)```yaml\n(# conf/scheme/face5\.yaml.*?)```", RAW)[0]
    assert yaml.safe_load(scheme) == yaml.safe_load((ROOT / "conf/scheme/face5.yaml").read_text())
    data = yaml.safe_load(stated(r"(?s)`conf/data/face5_csv\.yaml`\):\n\n```yaml\n(.*?)```", RAW)[0])
    shipped = yaml.safe_load((ROOT / "conf/data/face5_csv.yaml").read_text())
    assert data == {key: shipped[key] for key in data}


def test_make_targets_run_what_readme_says():
    def recipe(target: str) -> str:
        return re.search(rf"^{target}:.*\n((?:\t.*\n)+)", MAKEFILE, re.M).group(1)

    def variable(name: str) -> str:
        return re.search(rf"^{name} :?= ?(.*)$", MAKEFILE, re.M).group(1)

    (experiment,) = stated(r"`make train` runs the `(\w+)` experiment")
    assert f"experiment={experiment} " in recipe("train")
    (rows,) = stated(r"`experiment=ablation model=\{([\w,]+)\}`")
    assert rows == variable("TABLE4_MODELS") == ",".join(config("bench").train.rows)
    assert "experiment=ablation model=$(TABLE4_MODELS)" in recipe("ablation")
    (group,) = stated(r"\(`make ablation` does: `(table4-)<data>-<time>`\)")
    assert variable("SWEEP_GROUP").startswith(f"{group}$(DATA)-")
    (seeds,) = stated(r"make mechanism # ERT, BRNet, the readout control and ODN under (\d+) seeds")
    assert variable("mechanism: SEEDS") == seeds
    assert variable("MECHANISM_MODELS") == "brnet,brnet_conv_pool,odn"
    assert "experiment=mechanism model=$(MECHANISM_MODELS)" in recipe("mechanism")


# ----------------------------------------------------------------------------- committed results


def agree(readme_cell: str, source_cell: str) -> bool:
    """README's numbers are the first of the source cell's, rounded as README shows them."""
    ours, theirs = numbers(readme_cell), numbers(source_cell)
    return bool(ours) == bool(theirs) and all(map(rounds_to, ours, map(float, theirs)))


def test_quickstart_numbers_are_the_committed_run():
    written = stated(
        rf"test NME on `common` of \*\*{N}\*\* \(inter-ocular\), against \*\*{N}\*\* for the mean-shape"
        rf" baseline .{{0,60}}?, and {N} against {N} on `challenging`"
    )
    metrics = load_json("quickstart/metrics.json")
    keys = [f"test/{split}/{key}" for split in ("common", "challenging") for key in ("nme", "nme_mean_shape")]
    assert all(map(rounds_to, written, [metrics[key] for key in keys])), written
    # `experiments/quickstart/` holds that run: its config is the quickstart's
    run = OmegaConf.load(EXPERIMENTS / "quickstart/config.yaml")
    cfg = config("train", "experiment=quickstart")
    for key in "data.image_size data.batch_size model.optimizer.lr trainer.max_epochs data.synthetic".split():
        assert OmegaConf.select(run, key) == OmegaConf.select(cfg, key), key


def test_mechanism_tables_are_table4_md():
    text = (EXPERIMENTS / "mechanism/table4.md").read_text()
    rows = {r[0]: r[1:] for r in table(text, "| Method | common NME")}  # 12 cells, the last the runs
    for r in table(text, "| Method | common occluded-point NME"):
        rows[r[0]] += r[1:]
    readme = table(RAW, "| method (3 seeds; ERT one fit) |")
    assert len(readme) == len(rows)
    for (method, *cells), (name, source) in zip(readme, rows.items(), strict=True):
        assert method.split(" (")[0] == name.split(" (")[0]
        # common, challenging NME; full occluded-point NME; occluder AUROC in face; per-landmark AUROC
        assert all(agree(c, source[i]) for c, i in zip(cells, [0, 1, 14, 15, 17], strict=True)), method
    for model, n, *cells in table(RAW, "| run | n | common NME (x10^-2) |"):
        source = rows[{"model=brnet": "BRNet", "model=odn": "ODN (GM+LM+DM)"}[model]]
        assert f"{n} of {n} seeds" in source[11] and all(map(agree, cells, source[:3])), model
    key = "test/full/landmark_occlusion_auroc"
    runs = [load_json(f"mechanism/runs/odn_seed{seed}.metrics.json")[key] for seed in range(3)]
    mentions = re.findall(r"AUROC (?:of 1 - P )?(0\.\d+), (0\.\d+),? (?:and )?(0\.\d+) (?:over|by)", TEXT)
    assert len(mentions) == 2 and all(all(map(rounds_to, seeds, runs)) for seeds in mentions), mentions


def occlusion_runs(network: str, key: str) -> list[float]:
    runs = sorted((EXPERIMENTS / "occlusion/runs" / network).glob("seed-*/metrics.json"))
    return [json.loads(path.read_text())[f"test/full/{key}"] for path in runs]


def test_occlusion_table_is_the_committed_runs():
    epochs, px, seeds = stated(r"budget, (\d+) epochs from scratch at (\d+) px .{0,25}?, (\d+) seeds each")
    cfg = config("train", "experiment=quickstart")
    assert (cfg.trainer.max_epochs, cfg.data.image_size) == (int(epochs), int(px))
    networks = ["odn", "odn_supervised", "brnet_visibility", "brnet"]  # README's rows, tables.md's columns
    assert all(len(occlusion_runs(network, "nme")) == int(seeds) for network in networks)
    source = {}  # a row per number; tables.md's two tables share the header
    for block in (EXPERIMENTS / "occlusion/tables.md").read_text().split("\n| number |")[1:]:
        source.update({r[0]: r[1:] for r in table("| number |" + block, "| number |")})
    readme = table(RAW, "| network | AUROC | recall at 80% precision | NME challenging (x10^-2) |")
    shown = ["AUROC, full", "recall at 80% precision (%), full", "NME challenging (x10^-2)"]
    for column, (network, *cells) in enumerate(readme):
        assert all(agree(c, source[row][column]) for c, row in zip(cells, shown, strict=True)), network
    per_seed = stated(r"in every seed is not reached: (0\.\d+), (0\.\d+), (0\.\d+)\)")
    assert all(map(rounds_to, per_seed, occlusion_runs("odn", "occlusion_probability_auroc"))), per_seed
    head_auroc, head_recall, p_auroc, p_recall = stated(
        r"the visibility head reaches AUROC (0\.\d+) and (\d+)% recall at 80% precision"
        r" .*? supervised P reaches AUROC (0\.\d+) but (\d+)%"
    )
    pairs = {"brnet_visibility": (head_auroc, head_recall), "odn_supervised": (p_auroc, p_recall)}
    for network, (auroc, recall) in pairs.items():
        assert rounds_to(auroc, statistics.mean(occlusion_runs(network, "occlusion_probability_auroc")))
        at_p80 = statistics.mean(occlusion_runs(network, "occlusion_probability_recall_at_p80"))
        assert rounds_to(recall, 100 * at_p80), network


def test_figure4_numbers_are_figure4_json():
    methods = load_json("figure4/figure4.json")
    for method, *cells, occlusion in table(RAW, "| method | NME, eye centres (x10^-2) |"):
        m = methods[method]
        shown = [m["inter_pupil/all/nme"], m["inter_pupil/all/below_08"], m["inter_ocular/all/below_08"]]
        assert all(rounds_to(c, 100 * v) for c, v in zip(cells, shown, strict=True)), method
        shown = [100 * m[k] for k in ("occlusion_precision", "occlusion_recall") if m[k] is not None]
        assert len(numbers(occlusion)) == len(shown), method  # no precision (null): "-"
        assert all(map(rounds_to, numbers(occlusion), shown)), method
    by_name = {name.split("(")[0]: m for name, m in methods.items()}
    (ceiling,) = stated(r"eye-centre normaliser no published method passes (\d+)%")
    assert rounds_to(ceiling, max(100 * m["inter_pupil/all/below_08"] for m in methods.values()))
    hpm, sapm, cfss = stated(r"HPM has ([\d.]+)% \(SAPM ([\d.]+)%, CFSS ([\d.]+)%\)")
    for name, written in (("HPM", hpm), ("SAPM", sapm), ("CFSS", cfss)):
        assert rounds_to(written, 100 * by_name[name]["inter_ocular/all/below_08"]), name
    (visible,) = stated(r"HPM and SAPM already reach ([\d.]+)% by the outer corners")
    assert all(rounds_to(visible, 100 * by_name[n]["inter_ocular/visible/below_08"]) for n in ("HPM", "SAPM"))
    (ratio,) = stated(r"which gives about ([\d.]+)x larger NMEs on its shipped results")
    for m in methods.values():
        for subset in ("all", "visible"):
            assert rounds_to(ratio, m[f"inter_pupil/{subset}/nme"] / m[f"inter_ocular/{subset}/nme"])


def test_detector_table_is_experiments_detectors():
    measured = {
        r[0]: r for r in table((EXPERIMENTS / "detectors/README.md").read_text(), "| detector | recall |")
    }
    rows = dict(mmod="mmod (upsample 0, default)", hog="hog (upsample 1)", haar="haar", hog0="hog upsample 0")
    for option, _, found, ms in table(RAW, "| `detector=` | what |"):
        name = re.match(r"`(\w+)", option).group(1)
        if name in rows:
            _, recall, false_positives, measured_ms, _ = measured[rows[name]]
            faces, total, fps = stated(r"(\d+) of (\d+)\b.*?(\d+) false positives?", found)
            assert (f"{faces}/{total}", fps) == (recall, false_positives), name
            assert rounds_to(ms, float(measured_ms)), name
    ms = {name: float(measured[row][3]) for name, row in rows.items()}
    (slower,) = stated(r"runs on the CPU \(dlib-bin has no CUDA\) at about (\d+)x HOG's time")
    (faster,) = stated(r"`detector=hog detector\.upsample=0` makes HOG about (\d+)x faster")
    assert abs(ms["mmod"] / ms["hog"] / int(slower) - 1) < 0.1  # "about": within 10%
    assert abs(ms["hog"] / ms["hog0"] / int(faster) - 1) < 0.1
    (iou,) = stated(r"a face is found when the detector's box overlaps the face's box with IoU >= ([\d.]+);")
    assert f"\nIOU_FOUND = {iou}\n" in (EXPERIMENTS / "detectors/measure.py").read_text()


def test_bench_numbers_are_the_committed_record():
    bench = load_json("bench/cpu-2cores.json")
    step, regularisers, cached, photographs, onnx = stated(
        r"ODN's step ([\d.]+)x BRNet's, the regularisers ([\d.]+)% of it, the cached data path (\d+)x what the model"
        r" consumes per worker \((\d+)x from the photographs\), ONNX Runtime ([\d.]+)x eager at batch 1"
    )
    rows, odn = bench["train"]["rows"], bench["inference"]["networks"]["odn"]["runtimes"]
    assert rounds_to(step, rows["odn"]["median_ms"] / rows["brnet"]["median_ms"])
    # the regularisers' own cost, under the recipe's (decoupled) placement of the Frobenius terms
    assert rounds_to(regularisers, 100 * bench["train"]["terms_alone"]["share_of_odn_step"]["decoupled"])
    assert rounds_to(cached, bench["data"]["train_cached"]["data_over_model"])
    assert rounds_to(photographs, bench["data"]["train"]["data_over_model"])
    assert rounds_to(onnx, odn["onnx"]["1"]["median_ms"] / odn["eager"]["1"]["median_ms"])


def test_ablation_timing_is_the_recorded_one():
    took, day = stated(r"DATA=synthetic` (\d+ min \d+ s) for its six networks \(measured on ([\d-]+);")
    record = (EXPERIMENTS / "table4_synthetic/README.md").read_text()
    assert f"{took} wall for the six runs" in record and f"sweep produced on {day}" in record
