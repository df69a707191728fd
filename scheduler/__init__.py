"""gpu-scheduler: hands a national GPU fleet to competing AI consortia and takes it back safely."""

__version__ = "0.1.0"

DOMAIN = "gpu-scheduler.sovereign-ai.kr"
