"""Run a Docker image's command line on this machine, as the container would run it.

Docker cannot run here, so the container is rebuilt from kernel parts: a private mount
namespace (``unshare -m``) in which the root file system is read-only (``docker run
--read-only``), the image's volume and copied folders are bound at their places, ``/tmp``
is a scratch folder (``--tmpfs /tmp``), and the command runs as the image's numeric
user with exactly its environment (``setpriv``, ``env -i``). Nothing is left on the
host: a folder the image has and the host lacks (``/etc/gatehold``) is made in an
overlay over its nearest existing parent, and the overlays vanish with the namespace.

What stands in for the image's own layers: the build stage is :func:`build_stage`
(its ``COPY`` instructions, laid out by setuptools as a wheel would install them),
bound at the image's ``site-packages`` and named by ``PYTHONPATH``; the interpreter is
the one of this test run, whose ``bin`` folder is put on ``PATH`` where the image has
``/usr/local/bin``. Folders on the way to it that the image's user may not enter (a
home folder of mode 0700) are opened in the namespace only, by an overlay whose top
layer is an empty folder of mode 0755.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tests.support.components import require_component
from tests.support.dockerfile import Image

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` of the python base image."""
TOOLS = ("unshare", "nsenter", "setpriv", "mount")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")
"""What .dockerignore keeps out of the build context, among the files copied."""


def require_tools() -> None:
    """Fail (under GATEHOLD_REQUIRE_ALL=1) when the namespace cannot be built here."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        require_component("util-linux", f"{', '.join(missing)} not found (apt install util-linux)")
    if os.geteuid() != 0:
        require_component("root", "a private mount namespace needs root (CAP_SYS_ADMIN)")


def build_stage(image: Image, folder: Path) -> Path:
    """The files the build stage installs: its ``COPY`` instructions into a source
    folder, then setuptools' ``build_py`` (a pure-Python wheel's content)."""
    source, site = folder / "src", folder / "site"
    for copy in image.build_copies:
        assert not copy.destination.startswith("/"), f"COPY to {copy.destination}"
        for name in copy.sources:
            if (ROOT / name).is_dir():
                destination = source / copy.destination
                shutil.copytree(ROOT / name, destination, symlinks=True, ignore=IGNORED)
            else:
                (source / copy.destination).mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / name, source / copy.destination / name)
    build = f"sys.argv = ['setup.py', '-q', 'build_py', '--build-lib', {str(site)!r}]"
    built = subprocess.run(
        [sys.executable, "-c", f"import sys, setuptools; {build}; setuptools.setup()"],
        cwd=source, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    return site


@dataclass
class ImageRoot:
    """The image's folders in ``scratch``, and how to run commands among them."""

    image: Image
    scratch: Path
    site: Path
    """What :func:`build_stage` built."""
    run_env: Mapping[str, str] = field(default_factory=dict)
    """What ``docker run -e`` would add to the image's ``ENV``."""

    def __post_init__(self) -> None:
        self.uid, self.gid = self.image.uid_gid
        assert self.uid != 0, "the image runs as root"
        self.volume = self.scratch / "volume"
        self.tmp = self.scratch / "tmp"
        self.volume.mkdir(mode=0o700)
        os.chown(self.volume, self.uid, self.gid)
        self.tmp.mkdir()
        self.tmp.chmod(0o1777)
        self.kept = self._mount_points_in_tmp()
        self.copied = self._copy_build_context()
        self.copied[self.site_packages] = self.site

    @property
    def site_packages(self) -> str:
        """Where the image has what the build stage installed."""
        (install,) = [copy for copy in self.image.copies if copy.from_stage is not None]
        python = f"python{sys.version_info.major}.{sys.version_info.minor}"
        return str(PurePosixPath(install.destination, "lib", python, "site-packages"))

    @property
    def env(self) -> dict[str, str]:
        """The process environment: the image's, the stand-ins for its layers, ``-e``."""
        interpreter_bin = Path(sys.executable).parent
        stand_ins = {"PATH": f"{interpreter_bin}:{SYSTEM_PATH}", "PYTHONPATH": self.site_packages}
        return {**self.image.env, **stand_ins, **self.run_env}

    def run_argv(self, args: Sequence[str] | None = None) -> list[str]:
        """``docker run --read-only --tmpfs /tmp -v VOLUME IMAGE [args]``."""
        argv = self.image.argv if args is None else [*self.image.entrypoint, *args]
        script = [*self._mounts(), *self._enter(argv)]
        return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", "\n".join(script)]

    def exec_argv(self, pid: int, argv: Sequence[str], *, as_root: bool = False) -> list[str]:
        """``docker exec`` into the namespace of the process ``pid``."""
        steps = [f"cd {shlex.quote(self.image.workdir)}"]
        steps.append(f"exec {shlex.join(argv)}" if as_root else self._enter(argv)[-1])
        return ["nsenter", "--mount", f"--target={pid}", "--", "sh", "-ec", "\n".join(steps)]

    def _enter(self, argv: Sequence[str]) -> list[str]:
        env = [f"{name}={value}" for name, value in self.env.items()]
        as_user = [
            "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
            "--no-new-privs", "--", "env", "-i", *env, *argv,
        ]  # fmt: skip
        return [f"cd {shlex.quote(self.image.workdir)}", f"exec {shlex.join(as_user)}"]

    def _copy_build_context(self) -> dict[str, Path]:
        """Each ``COPY`` of the build context → the scratch folder bound at its place."""
        copied: dict[str, Path] = {}
        for number, copy in enumerate(self.image.copies):
            if copy.from_stage is not None:
                continue
            folder = self.scratch / "image" / str(number)
            for source in copy.sources:
                assert (ROOT / source).is_dir(), f"COPY {source}: only folders are handled"
                shutil.copytree(ROOT / source, folder, dirs_exist_ok=True)
            copied[str(PurePosixPath(copy.destination))] = folder
        return copied

    def _mounts(self) -> list[str]:
        places = [*self.copied, *self.image.volumes]
        commands = [*self._make_places(places), *self._open_closed_folders()]
        for place, folder in self.copied.items():  # image layers: read-only
            commands += [f"mount --bind {q(folder)} {q(place)}"]
            commands += [f"mount -o remount,ro,bind {q(place)}"]
        (volume,) = self.image.volumes
        commands += [
            f"mount --bind {q(self.volume)} {q(volume)}",
            "mount -o remount,ro,bind /",
        ]
        for kept, point in self.kept.items():  # carried into the new /tmp by --rbind
            commands += [f"mount --bind {q(kept)} {q(point)}"]
            commands += [f"mount -o remount,ro,bind {q(point)}"]
        # Last: every folder bound above may be under this machine's /tmp.
        commands += [f"mount --rbind {q(self.tmp)} /tmp"]
        return commands

    def _mount_points_in_tmp(self) -> dict[Path, Path]:
        """The virtual environment, when it lies under this machine's ``/tmp`` (a checkout
        there): the scratch ``/tmp`` gets a mount point for it, so it stays in reach."""
        prefix = Path(sys.prefix)
        if Path("/tmp") not in prefix.parents:
            return {}
        point = self.tmp / prefix.relative_to("/tmp")
        point.mkdir(parents=True)
        for folder in (point, *point.relative_to(self.tmp).parents):
            (self.tmp / folder).chmod(0o755 if folder != Path(".") else 0o1777)
        return {prefix: point}

    def written_to_tmp(self) -> list[Path]:
        """What the image's processes left in ``/tmp`` (not the mount points made here)."""
        points = {folder for point in self.kept.values() for folder in (point, *point.parents)}
        return [path for path in self.tmp.rglob("*") if path not in points]

    def _make_places(self, places: Sequence[str]) -> list[str]:
        """Overlays that make each missing folder of ``places`` exist, read-only."""
        layers: dict[Path, Path] = {}
        for place in map(Path, places):
            if place.is_dir():
                continue
            parent = next(p for p in place.parents if p.is_dir())
            assert parent != Path("/"), f"{place}: no parent to lay it over"
            layer = layers.setdefault(parent, self.scratch / "layers" / str(len(layers)))
            (layer / place.relative_to(parent)).mkdir(parents=True, exist_ok=True)
        for layer in layers.values():
            for folder in (layer, *layer.rglob("*")):
                folder.chmod(0o755)
        outer_first = sorted(layers.items(), key=lambda item: len(item[0].parts))
        return [overlay(layer, parent) for parent, layer in outer_first]

    def _open_closed_folders(self) -> list[str]:
        """Overlays that let the image's user through folders on the way to the
        interpreter and the virtual environment."""
        needed = [Path(sys.executable).resolve(), Path(sys.prefix)]
        closed = sorted(
            {
                folder
                for path in needed
                for folder in path.parents
                if not folder.stat().st_mode & stat.S_IXOTH
            }
        )
        commands = []
        for number, folder in enumerate(closed):
            layer = self.scratch / "open" / str(number)
            layer.mkdir(parents=True)
            layer.chmod(0o755)
            commands.append(overlay(layer, folder))
        return commands


def overlay(layer: Path, folder: Path) -> str:
    """Mount ``layer`` over ``folder`` (read-only: an overlay without an upper folder)."""
    return f"mount -t overlay overlay -o lowerdir={layer}:{folder} {q(folder)}"


def q(path: Path | str) -> str:
    return shlex.quote(str(path))


def run(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one namespace command (``run_argv``/``exec_argv``) to its end."""
    return subprocess.run(
        list(argv), env={"PATH": SYSTEM_PATH}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
