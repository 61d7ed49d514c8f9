"""From a checkpoint to faces in the wild: the trained network and its crop (`model`), face detectors
(`detectors`), what is read (`media`), the runtimes that run the network (`runtimes`), what predict's
config asks for, built (`from_config`), export to ONNX / TorchScript (`exporting`; the metadata beside
an exported model: `export_metadata`; exported against eager: `verification`), the pipeline
(`pipeline`) and what a predict run writes (`outputs`). The entry points are `odn_lightning.predict`
and `odn_lightning.export`."""
