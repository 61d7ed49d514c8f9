"""What several test modules share: config composition, the CLI runner, small trees in each
benchmark's published layout, and typed batches."""
