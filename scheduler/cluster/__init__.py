"""The cluster as planning sees it: the snapshot model, decoding `kubectl -o json` into it, and
the label contract. No I/O here: reading a live cluster is the actuator's job."""

from scheduler.cluster.decode import SnapshotError, decode_snapshot, decode_snapshot_file
from scheduler.cluster.labels import Keys
from scheduler.cluster.snapshot import GpuPod, Namespace, Node, Snapshot, Taint

__all__ = [
    "GpuPod",
    "Keys",
    "Namespace",
    "Node",
    "Snapshot",
    "SnapshotError",
    "Taint",
    "decode_snapshot",
    "decode_snapshot_file",
]
