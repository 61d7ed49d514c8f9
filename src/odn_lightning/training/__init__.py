"""Training: the LightningModule (`module`) and its objective (`objective`, eq. 3), the callbacks that
put the run config into checkpoints and the hyper-parameters into loggers (`callbacks`), atomic
weights-only checkpoints (`checkpoints`), resuming (`resume`), how dashboards name a run
(`run_identity`), the DDP strategy of `trainer=ddp_cpu` (`strategies`), what a checkpoint may ask
to be built (`registry`), and Lightning's messages that do not apply, silenced (`quiet`). The entry points are `odn_lightning.train` and `odn_lightning.eval`."""
