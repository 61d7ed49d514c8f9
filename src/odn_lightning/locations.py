"""Where the installed suite lives: the repository (an editable install) and its Hydra configs. A
module of its own, importing nothing of the suite, so that any room may ask (schemes finds
`conf/scheme/` here) without importing the config plumbing that imports it back."""

from __future__ import annotations

from pathlib import Path

# The repository the package is installed from (editable): conf/ and pyproject.toml beside src/.
REPOSITORY = Path(__file__).resolve().parents[2]
CONFIG_DIR = str(REPOSITORY / "conf")
