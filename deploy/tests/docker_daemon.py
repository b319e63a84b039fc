"""A Docker daemon of the test's own (Debian's docker.io): its own socket, no bridge and no iptables rules,
so every container shares the host's network and reaches the loopback servers of the test. Its image
store (/var/lib/chargeback-docker) is kept between runs: the base image and unchanged layers are cached."""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DATA_ROOT = Path(os.environ.get("CHARGEBACK_DOCKER_DATA_ROOT", "/var/lib/chargeback-docker"))


def _executable(name: str, debian_path: str) -> str:
    # Debian's client first: another `docker` earlier on PATH may not match Debian's daemon.
    found = debian_path if Path(debian_path).is_file() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: apt-get install docker.io (deploy/ci/image_test.sh does)")
    return found


@contextmanager
def docker_daemon(folder: Path) -> Iterator[list[str]]:
    """A running daemon; yields the client command that talks to it. Stopped (only it) at the end."""
    dockerd, docker = _executable("dockerd", "/usr/sbin/dockerd"), _executable("docker", "/usr/bin/docker")
    socket = folder / "docker.sock"
    log = (folder / "dockerd.log").open("w")
    daemon = subprocess.Popen(
        [
            dockerd, "--host", f"unix://{socket}", "--data-root", str(DATA_ROOT),
            "--exec-root", str(folder / "exec"), "--pidfile", str(folder / "dockerd.pid"),
            "--bridge=none", "--iptables=false", "--ip6tables=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = [docker, "-H", f"unix://{socket}"]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*client, "version"], capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; its log: {folder / 'dockerd.log'}")
            time.sleep(0.5)
        yield client
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)
        log.close()
        # dockerd leaves its network namespace mounted in the exec root; unmounted, the folder can go.
        namespace = folder / "exec" / "netns" / "default"
        if os.path.ismount(namespace):
            subprocess.run(["umount", str(namespace)], check=False)
