"""The bench room: what `python -m odn_lightning.bench` measures, one module per idea (settings,
measurement, train_step, speed, markdown); `bench.py` composes them."""
