"""Classical baselines every deep result is read against (issue 13): dlib's ERT shape predictor."""
