"""Landmarks on your own photos, folders, videos and camera: `python -m odn_lightning.predict
ckpt_path=PATH input=PATH|CAMERA_INDEX` (or `odn-predict`, `make predict`).

A face detector (`detector=mmod|hog|haar|boxes|none`, conf/detector/) finds the faces, each face is cropped
as the checkpoint's training crops were, the network runs in batches (eager PyTorch, or ONNX Runtime
with `runtime=onnx`) and its points are mapped back to image pixels, with each point's calibrated
occlusion probability where the network has an occlusion output (P, or the visibility head) and a
calibration (`inference.outputs` says what is written). A folder or video never stops on one file or
frame: what was skipped, and why, is listed at the end and in `skipped.csv`. The run fails (exit 1)
only when no face was found at all.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from . import runs
from .config import CONFIG_DIR
from .inference.export_metadata import occlusion_calibration
from .inference.from_config import build_detector, check_scheme, load_runtime
from .inference.media import open_media
from .inference.outputs import UNCALIBRATED_LINE, PredictionOutputs, occlusion_note
from .inference.pipeline import LandmarkPredictor, no_face_reason
from .schemes import scheme_from_declaration

SKIPPED_SHOWN = 10  # skipped inputs listed on the console (all of them are in skipped.csv)


def predict(cfg: DictConfig) -> dict[str, Any]:
    if OmegaConf.is_missing(cfg, "input") or cfg.input in (None, ""):
        raise runs.RunError("no input given: pass input=IMAGE, FOLDER, VIDEO or a camera index (input=0)")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    runs.name_paths_whole(cfg, ["ckpt_path", "onnx_path", "input"])  # in every record, as they are found
    runtime, metadata = load_runtime(cfg, runs.torch_device(cfg.device))
    where = f"ckpt_path={cfg.ckpt_path}" if cfg.ckpt_path else f"onnx_path={cfg.onnx_path}"
    check_scheme(cfg.expect_scheme, metadata, where)
    media = open_media(cfg.input, max_frames=cfg.max_frames, frame_step=cfg.frame_step)
    detector = build_detector(cfg, metadata, media.root)
    predictor = LandmarkPredictor(
        runtime,
        detector,
        image_size=int(metadata["image_size"]),
        crop_margin=float(metadata["crop"]["margin"]),
        crop_box=str(metadata["crop"]["box"]),
        batch_size=int(cfg.batch_size),
        refine=int(cfg.refine),
        max_faces=cfg.max_faces,
        calibration=occlusion_calibration(metadata),
    )
    if (runtime.has_occlusion_map or runtime.has_occlusion_logit) and predictor.calibration is None:
        print(UNCALIBRATED_LINE, flush=True)
    output_dir = Path(cfg.paths.output_dir)
    outputs = PredictionOutputs(
        output_dir,
        run={
            "input": str(cfg.input),
            "checkpoint": str(cfg.ckpt_path or cfg.onnx_path),
            "model": metadata,
            "runtime": runtime.name,
            "detector": detector.name,
            "refine": predictor.refine,
            "occlusion": occlusion_note(
                runtime.has_occlusion_map, predictor.calibration is not None, runtime.has_occlusion_logit
            ),
        },
        num_landmarks=scheme_from_declaration(metadata["scheme"]).num_landmarks,
        no_face_reason=no_face_reason(detector),
        has_occlusion=predictor.calibration is not None,
        relative_to=media.root,
        save_pts=bool(cfg.save_pts),
        annotate_images=bool(cfg.annotate),
        overlay_map=bool(cfg.overlay_map),
        # A video whose header gives no rate is written at 25 frames per second.
        video_fps=(media.fps or 25.0) if media.kind in ("video", "camera") else None,
    )
    started = time.perf_counter()
    written, interrupted = outputs.write_all(
        predictor.predict_frames(media), len(media) or None, media.kind, show_progress=bool(cfg.progress)
    )
    summary = {
        "faces": len(outputs.faces),
        "images or frames read": outputs.frames,
        "skipped": len(outputs.skipped),
        "seconds": round(time.perf_counter() - started, 2),
        **predictor.timings(),
    }
    runs.write_run_record(
        output_dir,
        {
            "run_dir": str(output_dir),
            "input": str(cfg.input),
            "checkpoint": str(cfg.ckpt_path or cfg.onnx_path),
            "detector": detector.name,
            "runtime": runtime.name,
            **summary,
            "files": {name: str(path) for name, path in written.items()},
        },
    )
    _print_summary(outputs, summary, written, interrupted)
    if not outputs.faces:
        listed = f"listed in {output_dir / 'skipped.csv'}"
        if not outputs.frames:  # nothing could be read: say why, from the first input skipped
            first = outputs.skipped[0]["reason"] if outputs.skipped else "the input holds no image or frame"
            raise runs.RunError(f"nothing could be read from input={cfg.input}: {first} ({listed})")
        raise runs.RunError(
            f"no face found in {outputs.frames} image(s) or frame(s) of input={cfg.input} ({listed}); "
            + no_face_reason(detector)
        )
    return summary


def _print_summary(outputs: PredictionOutputs, summary: dict, written: dict, interrupted: bool) -> None:
    """runs.print_summary's notes (shown, and into predict.log), then the first skipped inputs."""
    found = f"{summary['faces']} face(s) in {summary['images or frames read']} image(s) or frame(s)"
    notes = {"found": found + (" (interrupted)" if interrupted else "")}
    if (detector_ms := summary.get("detector_ms_per_image")) is not None:
        network_ms = summary.get("network_ms_per_face") or 0
        notes["time"] = f"detector {detector_ms:.1f} ms per image, network {network_ms:.1f} ms per face"
    notes.update({name: str(path) for name, path in written.items()})
    if outputs.skipped:
        notes["skipped"] = (
            f"{len(outputs.skipped)} (the first {min(len(outputs.skipped), SKIPPED_SHOWN)} below)"
        )
    runs.print_summary("odn-predict", {}, notes)
    if outputs.skipped:
        lines = []
        for item in outputs.skipped[:SKIPPED_SHOWN]:
            frame = "" if item["frame"] is None else f" frame {item['frame']}"
            lines.append(f"  {item['source']}{frame}: {item['reason']}")
        if len(outputs.skipped) > SKIPPED_SHOWN:
            lines.append(f"  ... and {len(outputs.skipped) - SKIPPED_SHOWN} more in skipped.csv")
        print("\n".join(lines), flush=True)
        runs.log_to_files(logging.INFO, "skipped:\n" + "\n".join(lines))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    runs.run_reporting_user_errors(predict, cfg)


if __name__ == "__main__":
    main()
