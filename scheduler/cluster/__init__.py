"""The cluster as planning sees it: snapshot model, decoding, and the label contract."""

from scheduler.cluster.decode import SnapshotError, decode_snapshot, decode_snapshot_file
from scheduler.cluster.labels import KEYS, Keys
from scheduler.cluster.snapshot import GpuPod, Namespace, Node, Snapshot, Taint

__all__ = ["KEYS", "GpuPod", "Keys", "Namespace", "Node", "Snapshot", "SnapshotError", "Taint",
           "decode_snapshot", "decode_snapshot_file"]
