"""A bench result as the Markdown beside its JSON (`<device>.md`): one table per section."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    parts = [
        f"# Benchmark: {result['device']}",
        "",
        f"{env['device_name']}; torch {env['torch']}, {env['threads']} threads; {result['created']}. "
        f"Batch {result['settings']['batch_size']}, {result['settings']['image_size']} px; median of "
        f"{result['settings']['repeats']} after {result['settings']['warmup']} warm-up calls.",
    ]
    train = result.get("train")
    if train:
        memory_key = next(k for k in next(iter(train["rows"].values())) if k.startswith(("peak", "max_rss")))
        parts += [
            "",
            f"## Train step (forward, objective, backward, optimiser step; Table 4's rows under eq. 3 and "
            f"experiment={train['experiment']}, heatmap rows under their recipe)",
            "",
            _table(
                [
                    "row",
                    "network",
                    "experiment",
                    "weight penalty",
                    "params (M)",
                    f"GFLOPs at {train['image_size']} px",
                    "ms/step",
                    f"x {train['baseline']}",
                    "images/s",
                    memory_key,
                ],
                [
                    [
                        row,
                        v["variant"],
                        v["experiment"],
                        v["weight_penalty"],
                        round(v["parameters"] / 1e6, 2),
                        v["gflops"],
                        v["median_ms"],
                        v["ratio_to_baseline"],
                        v["images_per_s"],
                        v[memory_key],
                    ]
                    for row, v in train["rows"].items()
                ],
            ),
        ]
        for mode, shares in train.get("term_shares", {}).items():
            parts += [
                "",
                f"### ODN step by eq.-3 term, weight_penalty={mode}: {shares['step_ms']:.4g} ms with every "
                f"term, {shares['coord_l2_only_ms']:.4g} ms with coord_l2 only (regularisers' share "
                f"{shares['regularisers_share']:.1%})",
                "",
                _table(
                    ["term", "step without it (ms)", "saved (ms)", "share of the step"],
                    [
                        [n, t["step_without_ms"], t["saved_ms"], t["share"]]
                        for n, t in shares["terms"].items()
                    ],
                ),
            ]
        if "terms_alone" in train:
            alone = train["terms_alone"]
            parts += [
                "",
                f"### Each term alone, forward + backward in the loss (nuclear norm: {alone['nuclear_norm_method']})",
                "",
                _table(["term", "ms"], [[n, t["median_ms"]] for n, t in alone["terms"].items()]),
                "",
                "Regularisers' own cost over ODN's step: "
                + ", ".join(
                    f"weight_penalty={mode}: {share}"
                    for mode, share in alone.get("share_of_odn_step", {}).items()
                ),
            ]
    nuclear = result.get("nuclear")
    if nuclear:
        rows = []
        for d, methods in nuclear["dims"].items():
            for method, v in methods.items():
                if isinstance(v, dict):
                    rows.append([d, method, v["median_ms"], v["value_rel_error"], v["grad_max_abs_error"]])
        parts += [
            "",
            f"## Nuclear norm, value + gradient ({nuclear['matrix']}; errors vs float64 SVD)",
            "",
            _table(["d", "method", "ms", "value rel. error", "grad max abs error"], rows),
        ]
    data = result.get("data")
    if data:
        parts += [
            "",
            f"## Data path ({data['faces']} synthetic faces at {data['render_size']} px -> "
            f"{data['crop_size']} px crops; {data['cache']})",
            "",
            _table(
                [
                    "samples",
                    "read from",
                    "samples/s per worker",
                    "x uncached",
                    "model images/s (ODN step)",
                    "data / model",
                    "workers to feed",
                ],
                [
                    [
                        kind.split("_")[0],
                        "cache" if kind.endswith("_cached") else "photographs",
                        data[kind]["samples_per_s_per_worker"],
                        data[kind.split("_")[0]].get("cached_over_uncached")
                        if kind.endswith("_cached")
                        else 1,
                        data["model_images_per_s"],
                        data[kind]["data_over_model"],
                        data[kind]["workers_to_feed_model"],
                    ]
                    for kind in ("train", "train_cached", "eval", "eval_cached")
                ],
            ),
        ]
    inference = result.get("inference")
    if inference:
        rows = []
        for name, entry in inference["networks"].items():
            for runtime, by_batch in entry["runtimes"].items():
                if "error" in by_batch:
                    rows.append([name, runtime, f"failed: {by_batch['error']}", None, None, None])
                    continue
                for batch, v in by_batch.items():
                    memory = v.get("peak_cuda_memory_mib", v.get("rss_increase_mib"))
                    rows.append([name, runtime, batch, v["median_ms"], v["ms_per_face"], memory])
        parts += [
            "",
            f"## Inference latency ({inference['image_size']} px crops)",
            "",
            _table(
                [
                    "network",
                    "runtime",
                    "batch",
                    "ms/call",
                    "ms/face",
                    # CUDA: torch's allocator peak (ONNX Runtime's own arena is not in it); CPU: the
                    # resident memory the calls added to the process, sampled every 2 ms.
                    "peak MiB (CUDA)" if inference.get("device") == "cuda" else "RSS added, MiB",
                ],
                rows,
            ),
            "",
            _table(
                ["network", "ratio to eager", "value"],
                [
                    [n, k, v]
                    for n, e in inference["networks"].items()
                    for k, v in e["ratios_to_eager"].items()
                ],
            ),
        ]
    return "\n".join(parts) + "\n"
