"""The container image: the repository's Dockerfile built and run without a container daemon.

No registry is reachable in CI, so the base is made here from Debian packages (mmdebstrap:
bookworm with python3 and its venv module) and committed as `localhost/base-python:bookworm`;
the Dockerfile is built on it with `--build-arg BASE=...` (the published image uses the pinned
slim Python image instead: the Dockerfile is written for both). buildah builds and runs the image
(chroot isolation, vfs storage, which work on any root filesystem, in a container too).

Both are cached on the machine: the base is made once, and the image is built again only when
something it is built from changes (see `image`). The storage lives outside the checkout
(IMAGE_TEST_STORAGE, default /var/lib/gpu-scheduler-tests/containers) so a fresh clone reuses it.

The tools come from tests/tools/install-image-tools.sh (apt-get, as root). Where they cannot be
installed these tests fail, never skip: CI runs as root and must run every check.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import tomllib
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "tests" / "tools" / "install-image-tools.sh"
FIXTURE = REPO / "tests" / "telemetry" / "fixtures" / "dgx-h200.json"  # mounted, not copied in
STORAGE = Path(os.environ.get("IMAGE_TEST_STORAGE", "/var/lib/gpu-scheduler-tests/containers"))
RUNROOT = Path(os.environ.get("IMAGE_TEST_RUNROOT", "/run/gpu-scheduler-tests/containers"))
BASE = "localhost/base-python:bookworm"
IMAGE = "localhost/gpu-scheduler:test"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
USER = "65532:65532"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]

pytestmark = pytest.mark.slow


def buildah(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One buildah command on the tests' own storage; a failure fails the test with its output."""
    cmd = ["buildah", "--root", str(STORAGE), "--runroot", str(RUNROOT), "--storage-driver", "vfs", *args]
    env = {**os.environ, "BUILDAH_ISOLATION": "chroot", "STORAGE_DRIVER": "vfs"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


@pytest.fixture(scope="module")
def tools() -> None:
    """buildah and mmdebstrap, installed from Debian packages when missing."""
    if shutil.which("buildah") and shutil.which("mmdebstrap"):
        return
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not (shutil.which("buildah") and shutil.which("mmdebstrap")):
        pytest.fail(
            "the image tests need buildah and mmdebstrap, and could not install them with "
            f"{INSTALL.relative_to(REPO)} (it needs root and apt-get):\n{done.stdout}{done.stderr}"
        )


@pytest.fixture(scope="module")
def base(tools: None) -> str:
    """The Debian bookworm base with python3 and python3-venv, made once per machine."""
    names = buildah("images", "--format", "{{.Name}}:{{.Tag}}").stdout.split()
    if BASE in names:
        return BASE
    with tempfile.TemporaryDirectory(prefix="image-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        made = subprocess.run(
            ["mmdebstrap", "--variant=apt", "--include=python3,python3-venv", "--format=tar", "bookworm", str(rootfs)],
            capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
        )
        if made.returncode != 0:
            pytest.fail(f"mmdebstrap could not make the base image:\n{made.stderr[-4000:]}")
        container = buildah("from", "scratch").stdout.strip()
        try:
            buildah("add", container, str(rootfs), "/", timeout=600)
            buildah("commit", "--quiet", container, BASE, timeout=600)
        finally:
            buildah("rm", container, check=False)
    return BASE


def build_inputs(base_id: str) -> str:
    """A digest of everything the build reads: the Dockerfile, .dockerignore, the files it lets
    into the context (its `!path` lines), the base image and the build arguments."""
    ignore = (REPO / ".dockerignore").read_text()
    lines = [line.strip() for line in ignore.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", ".dockerignore must list what the build reads (`*`, then `!path` lines)"
    digest = hashlib.sha256(f"{base_id} {VERSION}\n".encode())
    for path in ["Dockerfile", ".dockerignore", *(line[1:] for line in lines if line.startswith("!"))]:
        top = REPO / path
        files = [top] if top.is_file() else sorted(
            p for p in top.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
        )
        for file in files:
            digest.update(f"{file.relative_to(REPO)} {file.stat().st_mode & 0o777:o}\n".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def image(base: str) -> str:
    """The repository's Dockerfile built on the Debian base, once per change of what it reads.

    The image is tagged with a digest of its inputs, and a run that finds that tag builds nothing.
    (buildah's own layer cache is no help on vfs storage: every cached step still copies and
    compares the whole root filesystem, so a rebuild with nothing changed took longer than a
    plain build.) Images of earlier inputs are removed, so the storage holds one."""
    base_id = buildah("images", "--format", "{{.ID}}", base).stdout.strip()
    tagged = f"{IMAGE}-{build_inputs(base_id)}"
    names = buildah("images", "--format", "{{.Name}}:{{.Tag}}").stdout.split()
    if tagged in names:
        buildah("tag", tagged, IMAGE)
        return tagged
    args = ["bud", "--pull=never", "--build-arg", f"BASE={base}", "--build-arg", f"VERSION={VERSION}"]
    if HOST_CA.exists():
        # pip inside the build trusts what the host trusts (a TLS-inspecting proxy, say)
        args += ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "--build-arg", f"PIP_CERT={HOST_CA}"]
    buildah(*args, "-t", tagged, "-t", IMAGE, str(REPO), timeout=1800)
    stale = [n for n in names if n.startswith(f"{IMAGE}-") and n != tagged]
    if stale:
        buildah("rmi", *stale, check=False)
    buildah("rmi", "--prune", check=False)
    return tagged


@pytest.fixture(scope="module")
def container(image: str):
    """A working container of the image, removed after the module."""
    name = f"gpu-scheduler-test-{uuid.uuid4().hex[:12]}"
    buildah("from", "--pull=never", "--name", name, image, timeout=600)
    try:
        yield name
    finally:
        buildah("umount", name, check=False)
        buildah("rm", name, check=False)


@pytest.fixture(scope="module")
def rootfs(container: str) -> Path:
    """The container's filesystem, mounted on the host."""
    return Path(buildah("mount", container).stdout.strip())


def run(container: str, *argv: str, user: str | None = None,
        volumes: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """A command in the container, as the image's user unless told otherwise."""
    opts = [*(["--user", user] if user else []), *(x for v in volumes for x in ("-v", v))]
    return buildah("run", *opts, container, "--", *argv, check=False)


def config(image: str) -> dict:
    return json.loads(buildah("inspect", "--type", "image", image).stdout)["OCIv1"]["config"]


def test_runs_as_65532_with_the_cli_as_entrypoint(image: str) -> None:
    conf = config(image)
    assert conf["User"] == USER
    assert conf["Entrypoint"] == ["gpu-scheduler"]
    assert "PYTHONDONTWRITEBYTECODE=1" in conf["Env"]


def test_oci_labels(image: str) -> None:
    labels = config(image)["Labels"]
    assert labels["org.opencontainers.image.source"] == "https://github.com/sovereign-ai/gpu-scheduler"
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == "gpu-scheduler"
    assert labels["org.opencontainers.image.description"]


def test_the_user_is_65532(container: str) -> None:
    done = run(container, "id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["uid=65532(nonroot)", "gid=65532(nonroot)"]


def test_validates_the_shipped_policy(container: str) -> None:
    done = run(container, "gpu-scheduler", "validate", "--policy", "/etc/gpu-scheduler/policies")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("/etc/gpu-scheduler/policies: valid (")


def test_agent_reports_telemetry_from_a_mounted_fixture(container: str, rootfs: Path) -> None:
    done = run(container, "gpu-scheduler", "agent", "--once", "--dry-run", "--nvml-fake", f"/mnt/{FIXTURE.name}",
               volumes=(f"{FIXTURE.parent}:/mnt:ro",))
    assert done.returncode == 0, done.stdout + done.stderr
    annotation = json.loads(done.stdout.strip().splitlines()[-1])
    assert annotation["version"] == 1
    assert annotation["driver_version"] == "580.65.06"
    assert (annotation["total_gpus"], annotation["healthy_gpus"]) == (8, 8)
    assert annotation["error"] == ""
    # the commands wrote nothing, not even to the scratch space
    assert not any((rootfs / "tmp").iterdir())


def test_nothing_is_writable_by_the_user_but_tmp(container: str) -> None:
    """`find / -xdev -writable` as 65532. -xdev leaves out /proc, /sys and /dev, which the runtime
    mounts (not part of the image); /tmp is the one scratch folder (world-writable and sticky in
    the image; the chart mounts an emptyDir over it and runs with a read-only root filesystem).
    Its presence in the answer also shows that find ran."""
    done = run(container, "find", "/", "-xdev", "-writable", user=USER)
    assert done.stdout.split() == ["/tmp"], done.stdout + done.stderr[-2000:]


def test_nothing_in_the_filesystem_belongs_to_the_user_or_is_world_writable(rootfs: Path) -> None:
    """The same on the image's files themselves, mode bits and owners, with nothing mounted.
    Symbolic links (always rwxrwxrwx) and device nodes are left out: the test's Debian base carries
    the /dev nodes mmdebstrap makes, and every container runtime mounts its own /dev over them."""
    found = []
    for top, dirs, files in os.walk(rootfs):
        for name in dirs + files:
            path = Path(top) / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode) or stat.S_ISCHR(st.st_mode) or path == rootfs / "tmp":
                continue
            if st.st_uid == 65532 or st.st_gid == 65532 or st.st_mode & stat.S_IWOTH:
                found.append(f"/{path.relative_to(rootfs)} {stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}")
    assert found == []
    tmp = (rootfs / "tmp").stat()
    assert stat.S_IMODE(tmp.st_mode) == 0o1777 and tmp.st_uid == 0


def test_ships_the_policy_and_the_venv_only(rootfs: Path) -> None:
    policies = rootfs / "etc" / "gpu-scheduler" / "policies"
    assert sorted(p.name for p in policies.iterdir()) == sorted(p.name for p in (REPO / "policies").iterdir())
    for shipped in policies.iterdir():
        assert shipped.read_bytes() == (REPO / "policies" / shipped.name).read_bytes()
    # no test fixture, source tree, wheel or installer came along
    names = {name for _, dirs, files in os.walk(rootfs) for name in dirs + files}
    assert not {f.name for f in (REPO / "tests" / "telemetry" / "fixtures").iterdir()} & names
    assert not (rootfs / "src").exists()
    assert not list((rootfs / "opt" / "venv").rglob("*.whl"))
    venv = rootfs / "opt" / "venv"
    assert not [p.name for p in (venv / "bin").iterdir() if p.name.startswith(("pip", "easy_install"))]
    assert not list((rootfs / "opt" / "venv").glob("lib/python3*/site-packages/pip"))
    assert not (rootfs / "root" / ".cache").exists()


def test_modules_are_compiled_at_build_time(container: str, rootfs: Path) -> None:
    """The container cannot write bytecode, so every module it imports is compiled in the image:
    the package, its dependencies and the interpreter's standard library (json, as a sample)."""
    done = run(container, "python3", "-c",
               "import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_path('stdlib'))")
    assert done.returncode == 0, done.stderr
    tag, stdlib = done.stdout.split()
    site = next((rootfs / "opt" / "venv").glob("lib/python3*/site-packages"))
    assert (site / "scheduler" / "cli" / "__init__.py").exists()
    missing = [
        str(py.relative_to(rootfs))
        for py in [*site.rglob("*.py"), *(rootfs / stdlib.lstrip("/") / "json").glob("*.py")]
        if not (py.parent / "__pycache__" / f"{py.stem}.{tag}.pyc").exists()
    ]
    assert missing == []
