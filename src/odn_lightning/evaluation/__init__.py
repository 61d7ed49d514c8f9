"""Evaluation: the numbers (`metrics`: NME, AUC, FR, occluded NME; `occlusion_metrics`,
`occlusion_scores`: how the occlusion output finds occluded points), the calibrated occlusion output
(`calibration`, `occlusion_output`, `recalibration`), what a run reports (`reports`, `report_files`,
`report_pictures`, `plots`, `occlusion_panels`), runs read back and compared (`recorded_runs`,
`comparison`, `ablation_table`), and the benchmarks' own rules (`cofw68_benchmark`, `scoring`,
`scored_run`, `figure4`, `benchmark_export`)."""
