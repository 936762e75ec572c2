"""The registry of a target: key paths -> hives (:mod:`.hives`), edits as data applied in
one transaction over several hives (:mod:`.edits`), ``.reg`` text (:mod:`.regfile`)."""

from servicing.registry.edits import EditKind, RegEdit, apply, transaction
from servicing.registry.hives import (HIVE_FILES, ImageRegistry, RegistryPathError,
                                      current_control_set, split_key)

__all__ = ["EditKind", "RegEdit", "apply", "transaction", "HIVE_FILES", "ImageRegistry",
           "RegistryPathError", "current_control_set", "split_key"]
