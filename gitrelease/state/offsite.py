"""Offsite copies of backups on S3-compatible storage (AWS S3, Cloudflare R2, Backblaze B2,
MinIO, ...), through boto3.

restic's model: an archive is kept as ``PREFIX/objects/<sha256>``, named by its content and
written once (a second push of the same archive uploads nothing); the backup's record
(``PREFIX/backups/<id>.json``: its id, name, digest, size, release, when) is written only
after its archive, so a listing never shows a backup whose archive is not all there. A fetch
writes to a temporary name beside the destination, checks the sha256 while it reads, and
renames only a copy that matches: a tampered or truncated object is refused, never restored.

Credentials come from boto3's own chain (the AWS environment variables, a profile, an
instance role), never from gitrelease's settings; errors name the bucket and the service's
error code, never a key. Every method blocks (network): callers run them in a thread.
Uploads and downloads go in parts of `PART_SIZE` with a few threads, so memory stays bounded
whatever the archive's size.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fsutil import fsync_dir
from gitrelease.core.settings import is_bucket, is_endpoint, is_prefix
from gitrelease.state.verification import sha256_file

__all__ = ["OffsiteCopy", "OffsiteError", "S3Offsite", "parse_offsite_url"]

PART_SIZE = 8 * 1024 * 1024
_THREADS = 4
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class OffsiteError(GitReleaseError):
    """The offsite storage could not be used, or what it holds is not what was written."""

    code = "offsite_error"
    exit_code = 15
    default_hint = ("check offsite_url, offsite_endpoint and the storage's credentials (the "
                    "AWS environment, a profile or an instance role)")


@dataclass(frozen=True)
class OffsiteCopy:
    """One backup as the offsite storage holds it."""

    backup_id: str
    sha256: str
    size: int
    record: dict[str, Any]  # what was pushed with it: name, release, when it was taken

    def to_dict(self) -> dict[str, Any]:
        return {"backup_id": self.backup_id, "sha256": self.sha256, "size": self.size,
                "record": self.record}


def parse_offsite_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` as (bucket, prefix without slashes at its ends)."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise OffsiteError(f"offsite_url must be s3://bucket/prefix, not {url!r}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    prefix = prefix.strip("/")
    if not is_bucket(bucket):
        raise OffsiteError(f"{bucket!r} is not an S3 bucket name (3-63 of a-z, 0-9, . and -)")
    if not is_prefix(prefix):
        raise OffsiteError(f"the prefix {prefix!r} may hold only letters, digits, '.', '_', "
                           "'-' and '/'")
    return bucket, prefix


class S3Offsite:
    """The offsite storage at `url` (``s3://bucket/prefix``), through `endpoint` (empty: AWS
    itself)."""

    def __init__(self, url: str, endpoint: str = "", *, region: str | None = None) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket, self.prefix = parse_offsite_url(url)
        if not is_endpoint(endpoint):
            raise OffsiteError(f"offsite_endpoint must be an http(s) URL, not {endpoint!r}")
        self.shown = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint or None,
            region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            config=Config(retries={"max_attempts": 3, "mode": "standard"},
                          connect_timeout=10, read_timeout=60))
        self._transfer = TransferConfig(multipart_threshold=PART_SIZE,
                                        multipart_chunksize=PART_SIZE,
                                        max_concurrency=_THREADS, use_threads=True)

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _failed(self, doing: str, exc: BaseException) -> OffsiteError:
        """What went wrong, in the service's words (its error code), never a credential."""
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            reason = "no credentials (set the AWS environment, a profile or an instance role)"
        elif isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            reason = f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
        else:
            reason = type(exc).__name__
        return OffsiteError(f"could not {doing} on {self.shown}: {reason}")

    def _call(self, doing: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, method)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(doing, exc) from None

    def _has(self, key: str) -> int | None:
        """The object's size, or None if there is none."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._failed("look at an object", exc) from None
        except BotoCoreError as exc:
            raise self._failed("look at an object", exc) from None
        return int(head["ContentLength"])

    def push(self, backup_id: str, archive: Path, record: dict[str, Any],
             sha256: str | None = None) -> OffsiteCopy:
        """Copy the backup's archive offsite (unless an object of its digest and size is
        there already), then its record. Safe to run again after any failure."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not _ID.match(backup_id):
            raise OffsiteError(f"{backup_id!r} is not a backup id")
        digest = sha256 or sha256_file(archive)
        size = archive.stat().st_size
        key = self._key("objects", digest)
        if self._has(key) != size:
            try:
                self._client.upload_file(str(archive), self.bucket, key,
                                         Config=self._transfer)
            except (BotoCoreError, ClientError) as exc:
                raise self._failed(f"upload {backup_id}", exc) from None
            except Exception as exc:  # s3transfer wraps what the service said
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, BotoCoreError | ClientError):
                    raise self._failed(f"upload {backup_id}", cause) from None
                raise
        body = {**record, "backup_id": backup_id, "sha256": digest, "size": size}
        self._call(f"record {backup_id}", "put_object", Bucket=self.bucket,
                   Key=self._key("backups", f"{backup_id}.json"),
                   Body=json.dumps(body, sort_keys=True, default=_json_default).encode(),
                   ContentType="application/json")
        return OffsiteCopy(backup_id, digest, size, body)

    def copies(self) -> list[OffsiteCopy]:
        """Every backup held offsite (those whose record was written), oldest id first."""
        found: list[OffsiteCopy] = []
        token: str | None = None
        while True:
            page = self._call("list the backups", "list_objects_v2", Bucket=self.bucket,
                              Prefix=self._key("backups") + "/",
                              **({"ContinuationToken": token} if token else {}))
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if not name.endswith(".json"):
                    continue
                body = self._call("read a backup's record", "get_object",
                                  Bucket=self.bucket, Key=item["Key"])["Body"].read()
                try:
                    record = json.loads(body)
                    copy = OffsiteCopy(str(record["backup_id"]), str(record["sha256"]),
                                       int(record["size"]), record)
                except (ValueError, KeyError, TypeError):
                    continue  # not a record of ours
                if _SHA256.match(copy.sha256) and copy.backup_id == name[:-len(".json")]:
                    found.append(copy)
            if not page.get("IsTruncated"):
                return sorted(found, key=lambda c: c.backup_id)
            token = page.get("NextContinuationToken")

    def copy(self, backup_id: str) -> OffsiteCopy | None:
        return next((c for c in self.copies() if c.backup_id == backup_id), None)

    def fetch(self, backup_id: str, into: Path) -> OffsiteCopy:
        """Download the backup's archive to `into`, checked against its digest: written to a
        temporary name first, renamed only when it matches (a mismatch leaves nothing)."""
        from botocore.exceptions import BotoCoreError, ClientError

        copy = self.copy(backup_id)
        if copy is None:
            raise OffsiteError(f"{self.shown} holds no backup {backup_id}")
        partial = into.with_name(f".{into.name}.offsite")
        try:
            self._client.download_file(self.bucket, self._key("objects", copy.sha256),
                                       str(partial), Config=self._transfer)
            os.chmod(partial, 0o600)
            if partial.stat().st_size != copy.size or sha256_file(partial) != copy.sha256:
                raise OffsiteError(f"the offsite copy of {backup_id} is not what was uploaded "
                                   "(its sha256 differs): it was changed or damaged",
                                   hint="restore from another backup; run backup verify "
                                        "--offsite")
            with partial.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(partial, into)
            fsync_dir(into.parent)
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(f"download {backup_id}", exc) from None
        finally:
            partial.unlink(missing_ok=True)
        return copy

    def delete(self, backup_id: str) -> None:
        """Remove the backup's record, then its archive unless another record names it."""
        copy = self.copy(backup_id)
        if copy is None:
            return
        self._call(f"delete {backup_id}", "delete_object", Bucket=self.bucket,
                   Key=self._key("backups", f"{backup_id}.json"))
        if not any(c.sha256 == copy.sha256 for c in self.copies()):
            self._call(f"delete {backup_id}", "delete_object", Bucket=self.bucket,
                       Key=self._key("objects", copy.sha256))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")
