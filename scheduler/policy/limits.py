"""The limits on what a policy file may be, so that no file, however it was written, can take a
process's memory or time: a policy is a few kilobytes of hand-written YAML, and these bounds are
orders of magnitude above any real one (docs/policy.md, Limits)."""

from __future__ import annotations

MAX_FILE_BYTES = 1024 * 1024  # one policy file
MAX_DEPTH = 32  # nested mappings and sequences (a real policy nests 6 deep)
MAX_ALIASES = 256  # uses of YAML aliases (*name) in one file
MAX_VALUES = 100_000  # values in one document once its aliases are expanded
MAX_GPUS = 10_000_000  # any one GPU count: a quota, a pool's size times its node size
MIN_YEAR, MAX_YEAR = 1970, 9000  # instants a programme can be about (arithmetic stays in range)
