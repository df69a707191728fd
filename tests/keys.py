"""The label keys under the default prefix, as `gpu-scheduler` uses them without --label-prefix.
The package has no such constant on purpose: its functions take their keys explicitly."""

from scheduler.cluster import Keys

KEYS = Keys()
