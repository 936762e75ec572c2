"""The ops tier uses the overlay tier's wimlib-made WIMs."""

from tests.overlay.conftest import ov_base, ov_src, wim  # noqa: F401  (fixtures)
