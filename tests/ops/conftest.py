"""The ops tier uses the overlay tier's wimlib-made WIMs."""

from tests.overlay.conftest import ov_base, ov_src, sd_wim, wim  # noqa: F401  (fixtures)
