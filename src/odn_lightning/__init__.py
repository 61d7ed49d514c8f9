"""odn-lightning: Occlusion-adaptive Deep Networks for facial landmark detection, on Lightning + Hydra."""

__version__ = "0.1.0"
