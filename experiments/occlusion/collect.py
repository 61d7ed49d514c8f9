"""Copy a training run's metrics.json into runs/<network>/seed-<k>/ with faces.csv (split, index, NME
of each test face, from its predictions.csv): the files summarise.py reads.

    python experiments/occlusion/collect.py NETWORK RUN_DIR [RUN_DIR ...]   (each run's seed from run.json)
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent


def collect(network: str, run: Path) -> Path:
    config = (run / ".hydra" / "config.yaml").read_text()
    seed = next(int(line.split(":")[1]) for line in config.splitlines() if line.startswith("seed:"))
    target = HERE / "runs" / network / f"seed-{seed}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "metrics.json", target / "metrics.json")
    predictions = run / "predictions.csv"
    if predictions.is_file():
        with predictions.open() as f, (target / "faces.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["split", "index", "nme"])
            for row in csv.DictReader(f):
                writer.writerow([row["split"], row["index"], row["nme"]])
    return target


if __name__ == "__main__":
    network, *runs = sys.argv[1:]
    for run in runs:
        print(collect(network, Path(run)))
