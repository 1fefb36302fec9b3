"""A real S3-protocol server for the tests: moto's standalone server (its S3 REST API over
HTTP), started on loopback by the tests in a process of its own; boto3 talks to it as to any
S3-compatible service. Nothing of boto3 is patched."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["PUSH_CHILD", "S3Server", "object_keys", "offsite_settings", "push_in_child",
           "s3_bucket", "s3_server"]


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self) -> object:
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=self.endpoint,
                                              region_name="us-east-1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_s3(env: dict[str, str] | None = None) -> S3Server:
    """moto's server on a free loopback port; `env` adds to its environment (moto's own
    switches, such as INITIAL_NO_AUTH_ACTION_COUNT for a server that checks credentials)."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "moto's server did not start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return S3Server(f"http://127.0.0.1:{port}", process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("moto's server did not answer within 30 s")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    # Any credentials do for moto; they are set so that boto3's chain finds some, as it
    # would find an operator's.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing-key-id")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = start_s3()
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh bucket of this test's own."""
    name = f"gitrelease-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def object_keys(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in listed.get("Contents", []))


def offsite_settings(deploy: Path, server: S3Server, bucket: str, *, mode: str = "manual",
                     key: Path | None = None, extra: str = "") -> bytes | None:
    """Point a deployment's offsite settings at `bucket`/bot; with `key` (a path outside
    the deployment), a fresh key is written there and set as offsite_key_file, and
    returned."""
    from gitrelease.state.offsite_crypt import load_key, new_key_file

    lines = [f'offsite = "{mode}"', f'offsite_url = "s3://{bucket}/bot"',
             f'offsite_endpoint = "{server.endpoint}"']
    secret = None
    if key is not None:
        if not key.exists():
            new_key_file(key)
        secret = load_key(key)
        lines.append(f'offsite_key_file = "{key}"')
    (deploy / "data" / "settings.toml").write_text("\n".join(lines) + "\n" + extra)
    return secret


# A push in a process of its own, that prints its peak memory as one JSON line: VmHWM of
# /proc/self/status (ru_maxrss also counts the pages of the parent the child held until it
# exec'd the interpreter). Args: bucket, endpoint, archive, and a key file or "".
PUSH_CHILD = """
import json, resource, sys
from pathlib import Path
from gitrelease.state.offsite import S3Offsite
from gitrelease.state.offsite_crypt import load_key

bucket, endpoint, archive, key_file = sys.argv[1:5]
key = load_key(Path(key_file)) if key_file else None
copy = S3Offsite(f"s3://{bucket}/bots", endpoint).push("bkp_big", Path(archive),
                                                       {"name": "big"}, key=key)
try:
    hwm = next((int(line.split()[1]) / 1024 for line in open("/proc/self/status")
                if line.startswith("VmHWM:")), None)
except OSError:  # not Linux
    hwm = None
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
print(json.dumps({"sha256": copy.sha256, "size": copy.size, "object": copy.object,
                  "peak_mib": hwm,
                  "ru_maxrss_mib": maxrss / (2**20 if sys.platform == "darwin" else 1024)}))
"""


def push_in_child(bucket: str, endpoint: str, archive: Path,
                  key_file: Path | None = None) -> dict[str, object]:
    """Run PUSH_CHILD; what it printed."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", PUSH_CHILD, bucket, endpoint, str(archive),
         str(key_file or "")], cwd=root, env={**os.environ}, capture_output=True, text=True,
        timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))
