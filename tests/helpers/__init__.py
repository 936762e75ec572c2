"""Test infrastructure for wimfs: oracles (wimlib-imagex, ntfs-3g), tree generators, snapshots, mounts."""

from .env import (REPO_ROOT, corpus_dir, fuse_missing_reason, mount_impl, require_fuse,
                  require_tool, run, using_wimlib_mount)
from .mount import MountFailed, MountPool, mounted, run_wimfs, wimfs_cmd, wimfs_info_json
from .ntfs import NtfsWim, make_ntfs_wim, ntfs3g_mounted, ntfs_snapshot, security_descriptor
from .snapshot import NTFS_PROBE_XATTRS, assert_same_tree, diff_snapshots, snapshot
from .trees import KINDS, make_tree
from .wimlib import (wimlib_append, wimlib_apply, wimlib_capture, wimlib_info, wimlib_verify,
                     wimlib_xml)

__all__ = [
    "REPO_ROOT", "corpus_dir", "fuse_missing_reason", "mount_impl", "require_fuse", "require_tool",
    "run", "using_wimlib_mount", "MountFailed", "MountPool", "mounted", "run_wimfs", "wimfs_cmd",
    "wimfs_info_json", "NtfsWim", "make_ntfs_wim", "ntfs3g_mounted", "ntfs_snapshot",
    "security_descriptor", "NTFS_PROBE_XATTRS", "assert_same_tree", "diff_snapshots", "snapshot",
    "KINDS", "make_tree", "wimlib_append", "wimlib_apply", "wimlib_capture", "wimlib_info",
    "wimlib_verify", "wimlib_xml",
]
