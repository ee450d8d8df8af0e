"""The service's image, built the way a user builds it, on whatever base this machine has.

``python:3.11-slim-bookworm`` when a registry answers; otherwise a Debian bookworm root
filesystem made by ``debootstrap`` (Python 3.11 from Debian) and imported with
``docker import``, cached by tag so it is made once per machine. Dependencies come as a
wheelhouse built on the host, whose pip has the host's certificates: the build itself then
needs no network at all. One image per test session, reused by every container test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_BASE = "python:3.11-slim-bookworm"
LOCAL_BASE = "exchange-tokens-base:bookworm-python3.11-min"
# What the build needs from the repository (the rest stays out, as .dockerignore says).
CONTEXT_FILES = ("pyproject.toml", "setup.cfg", "README.md", "api", "workers", "cli",
                 "shared", "schemas", "deploy/Dockerfile", "deploy/healthcheck.py",
                 "deploy/wait_for_schema.py")


class ImageError(RuntimeError):
    pass


def docker(*args: str, timeout: float = 600, check: bool = True,
           input_bytes: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, timeout=timeout, check=False,
        input=input_bytes.decode() if input_bytes is not None else None, text=True,
    )
    if check and result.returncode != 0:
        raise ImageError(f"docker {' '.join(args)}: {result.stderr.strip()[-2000:]}")
    return result


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=15,
                      check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False, timeout=30).returncode == 0


def base_image() -> str:
    """The public slim image if it is here or can be pulled, else the local bookworm."""
    if image_exists(PUBLIC_BASE):
        return PUBLIC_BASE
    if docker("pull", PUBLIC_BASE, check=False, timeout=120).returncode == 0:
        return PUBLIC_BASE
    return local_base()


def local_base(tag: str = LOCAL_BASE) -> str:
    """A minimal bookworm with python3 and python3-venv, made once and cached by tag."""
    if image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise ImageError("no registry answers and debootstrap is not installed "
                         "(apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="et-rootfs-") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv",
             "bookworm", rootfs],
            check=True, capture_output=True, timeout=900,
        )
        # apt's lists and caches, documentation and translations: not needed to run.
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives", "usr/share/doc",
                     "usr/share/man", "usr/share/info", "usr/share/locale"):
            shutil.rmtree(Path(rootfs, junk), ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout,
                                  capture_output=True, timeout=600, check=False)
        tar.wait(60)
        if imported.returncode != 0:
            raise ImageError(f"docker import: {imported.stderr.decode()[-2000:]}")
    return tag


def wheelhouse(into: Path) -> None:
    """Every dependency as a wheel, plus the build backend the project asks for."""
    import sys

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(into),
         str(ROOT), "setuptools>=68", "wheel"],
        check=True, capture_output=True, timeout=900,
    )
    # The project itself is built in the image from its sources, not taken from here.
    for own in into.glob("exchange_tokens-*.whl"):
        own.unlink()


def build_context(into: Path) -> None:
    for name in CONTEXT_FILES:
        source = ROOT / name
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    wheelhouse(into / "deploy" / "wheelhouse")


def build(tag: str, *, base: str | None = None) -> float:
    """Build ``tag`` from deploy/Dockerfile; returns the seconds the build took."""
    base = base or base_image()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="et-context-") as context:
        build_context(Path(context))
        docker("build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
               "-f", "deploy/Dockerfile", "-t", tag, context, timeout=1200)
    return time.monotonic() - started


def image_size(tag: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


if __name__ == "__main__":
    import sys

    tag = sys.argv[1] if len(sys.argv) > 1 else "exchange-tokens:test"
    seconds = build(tag, base=os.environ.get("BASE_IMAGE"))
    print(f"{tag}: built in {seconds:.0f} s, {image_size(tag) / 1e6:.0f} MB")
