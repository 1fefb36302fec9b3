"""Offsite copies of backups on S3-compatible storage (AWS S3, Cloudflare R2, Backblaze B2,
MinIO, ...), through boto3.

restic's model: an archive is kept as ``PREFIX/objects/<sha256>``, named by its content and
written once (a second push of the same archive uploads nothing); the backup's record
(``PREFIX/backups/<id>.json``: its id, name, digest, size, release, when) is written only
after its archive, so a listing never shows a backup whose archive is not all there. A fetch
writes to a temporary name beside the destination, checks the sha256 while it reads, and
renames only a copy that matches: a tampered or truncated object is refused, never restored.

With a key (setting `offsite_key_file`), an archive is encrypted on this host before it
leaves (`offsite_crypt`: AES-GCM in chunks) and kept under a name keyed by that key, so the
storage sees neither the archive nor its digest; the record says which key it needs, and
is signed with it (`offsite_crypt.record_mac`), checked before any download where the key is.

Uploads and prunes take a lock in the bucket (``PREFIX/locks/<kind>-<uuid>.json``, restic's
way): each writes its own lock, then lists the others, and backs off when it finds one of the
other kind that is fresh (younger than `LOCK_STALE` by the server's own clock), so a prune
never deletes an object an upload is about to name.

Credentials come from boto3's own chain (the AWS environment variables, a profile, an
instance role), never from gitrelease's settings; errors name the bucket and the service's
error code, never a key. Every method blocks (network): callers run them in a thread.
Uploads and downloads go in parts of `PART_SIZE` with a few threads, so memory stays bounded
whatever the archive's size.

Over the ~400-line aim: one class, S3Offsite, whose parts (locks, push, fetch and check,
prune) share its client, its names and its error wording; split, each would import the rest.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fsutil import fsync_dir
from gitrelease.core.settings import is_bucket, is_endpoint, is_prefix
from gitrelease.state.verification import sha256_file

__all__ = ["LOCK_STALE", "OffsiteBusy", "OffsiteCopy", "OffsiteError", "S3Offsite",
           "parse_offsite_url"]

PART_SIZE = 8 * 1024 * 1024
_KINDS = {"upload": "an upload", "prune": "a prune"}
LOCK_STALE = timedelta(minutes=30)  # a lock older than this was left by a process that died
_THREADS = 4
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class OffsiteError(GitReleaseError):
    """The offsite storage could not be used, or what it holds is not what was written."""

    code = "offsite_error"
    exit_code = 15
    default_hint = ("check offsite_url, offsite_endpoint and the storage's credentials (the "
                    "AWS environment, a profile or an instance role)")


class OffsiteBusy(OffsiteError):
    """Another host's prune (for an upload) or upload (for a prune) holds the bucket now."""

    code = "offsite_busy"
    default_hint = "it is retried later; a lock older than 30 minutes is ignored"


@dataclass(frozen=True)
class OffsiteCopy:
    """One backup as the offsite storage holds it."""

    backup_id: str
    sha256: str  # of the archive itself (as the local index knows it)
    size: int
    record: dict[str, Any]  # what was pushed with it: name, release, when it was taken

    @property
    def object(self) -> str:
        """The name its archive is stored under: the digest, or a keyed name if encrypted."""
        return str(self.record.get("object") or self.sha256)

    @property
    def encrypted(self) -> bool:
        return bool(self.record.get("encrypted"))

    def to_dict(self) -> dict[str, Any]:
        return {"backup_id": self.backup_id, "sha256": self.sha256, "size": self.size,
                "encrypted": self.encrypted, "key_id": self.record.get("key_id"),
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
             sha256: str | None = None, *, key: bytes | None = None) -> OffsiteCopy:
        """Copy the backup's archive offsite (unless an object of its name and size is there
        already), encrypted first when there is a `key`, then its record. Safe to run again
        after any failure; refused (`OffsiteBusy`) while another host prunes."""
        if not _ID.match(backup_id):
            raise OffsiteError(f"{backup_id!r} is not a backup id")
        try:
            digest = sha256 or sha256_file(archive)
            size = archive.stat().st_size
        except OSError as exc:
            raise OffsiteError(f"cannot read the archive of {backup_id}: "
                               f"{exc.strerror or exc}") from None
        with self._lock("upload", against=("prune",)):
            if key is None:
                name, stored_size = digest, size
                if self._has(self._key("objects", name)) != size:
                    self._upload(backup_id, archive, name)
            else:
                from gitrelease.state import offsite_crypt

                name = offsite_crypt.object_name(key, digest)
                stored_size = self._has(self._key("objects", name))
                if stored_size is None:
                    sealed = _scratch(archive.parent, backup_id)
                    try:
                        offsite_crypt.encrypt_file(key, archive, sealed)
                        stored_size = sealed.stat().st_size
                    except OSError as exc:  # the disk beside the archive, not the bucket
                        raise OffsiteError(f"could not seal {backup_id} for upload beside "
                                           f"its archive: {exc.strerror or exc}") from None
                    try:
                        self._upload(backup_id, sealed, name)
                    finally:
                        sealed.unlink(missing_ok=True)
            body = {**record, "backup_id": backup_id, "sha256": digest, "size": size,
                    "object": name, "stored_size": stored_size, "encrypted": key is not None}
            if key is not None:
                from gitrelease.state.offsite_crypt import key_id, record_mac

                body["key_id"] = key_id(key)
                # Signed as it will read back (JSON's types), so that whoever holds the key
                # can tell the record is this one, unchanged.
                body = json.loads(json.dumps(body, default=_json_default))
                body["mac"] = record_mac(key, body)
            self._call(f"record {backup_id}", "put_object", Bucket=self.bucket,
                       Key=self._key("backups", f"{backup_id}.json"),
                       Body=json.dumps(body, sort_keys=True, default=_json_default).encode(),
                       ContentType="application/json")
        return OffsiteCopy(backup_id, digest, size, body)

    def _upload(self, backup_id: str, path: Path, name: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.upload_file(str(path), self.bucket, self._key("objects", name),
                                     Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(f"upload {backup_id}", exc) from None
        except Exception as exc:  # s3transfer wraps what the service said, or gives up
            cause = exc.__cause__ or exc.__context__
            raise self._failed(f"upload {backup_id}", cause if isinstance(
                cause, BotoCoreError | ClientError) else exc) from None

    @contextmanager
    def _lock(self, kind: str, *, against: tuple[str, ...]) -> Iterator[None]:
        """Hold a `kind` lock in the bucket for the block; `OffsiteBusy` if a fresh lock of
        a kind in `against` (another host's) is there. Written first, then looked for: of two
        that start together, at least one sees the other."""
        mine = self._key("locks", f"{kind}-{uuid.uuid4().hex}.json")
        self._call("take a lock", "put_object", Bucket=self.bucket, Key=mine,
                   Body=json.dumps({"kind": kind, "host": socket.gethostname(),
                                    "pid": os.getpid()}).encode())
        try:
            locks = self._listing(self._key("locks") + "/")
            now = next((item["LastModified"] for item in locks if item["Key"] == mine), None)
            for item in locks:
                other = item["Key"].rsplit("/", 1)[-1].split("-", 1)[0]
                if item["Key"] == mine or other not in against:
                    continue
                if now is None or now - item["LastModified"] < LOCK_STALE:
                    raise OffsiteBusy(
                        f"{self.shown} is locked by {_KINDS[other]} under way on another "
                        f"host or process ({item['Key'].rsplit('/', 1)[-1]})")
            yield
        except BaseException:
            with suppress(OffsiteError):  # what went wrong is told, not the lock's release
                self._call("let go of a lock", "delete_object", Bucket=self.bucket, Key=mine)
            raise
        self._call("let go of a lock", "delete_object", Bucket=self.bucket, Key=mine)

    def _listing(self, prefix: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._call("list objects", "list_objects_v2", Bucket=self.bucket,
                              Prefix=prefix, **({"ContinuationToken": token} if token else {}))
            found += page.get("Contents", [])
            if not page.get("IsTruncated"):
                return found
            token = page.get("NextContinuationToken")

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

    def fetch(self, backup_id: str, into: Path, *, key: bytes | None = None,
              expect: str | None = None, copy: OffsiteCopy | None = None) -> OffsiteCopy:
        """Download the backup's archive to `into`, decrypted if it was encrypted, checked
        against its digest (and `expect`, the sha256 the local index recorded, when there is
        one): written to a temporary name first, renamed only when it matches (a mismatch, a
        wrong key or a failed download leaves nothing). `copy`: its record, when the caller
        has just listed it (the listing reads every record: not done twice)."""
        copy = copy if copy is not None and copy.backup_id == backup_id else \
            self.copy(backup_id)
        if copy is None:
            raise OffsiteError(f"{self.shown} holds no backup {backup_id}")
        if expect is not None and copy.sha256 != expect:
            raise OffsiteError(f"the offsite copy of {backup_id} is not the archive the index "
                               "recorded (another sha256): it is not fetched",
                               hint="run gitrelease backup verify --offsite")
        partial = _scratch(into.parent, backup_id)
        try:
            self._check_into(copy, partial, key)
            with partial.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(partial, into)
            fsync_dir(into.parent)
        finally:
            partial.unlink(missing_ok=True)
        return copy

    def check(self, copy: OffsiteCopy, scratch: Path, *, key: bytes | None = None) -> None:
        """Download the copy and check it (decrypted, against its digest); keeps nothing.
        `OffsiteError` says what is wrong."""
        partial = _scratch(scratch, copy.backup_id)
        try:
            self._check_into(copy, partial, key)
        finally:
            partial.unlink(missing_ok=True)

    def _check_into(self, copy: OffsiteCopy, target: Path, key: bytes | None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if key is not None:
            import hmac

            from gitrelease.state.offsite_crypt import record_mac

            mac = copy.record.get("mac")
            if not isinstance(mac, str) or not hmac.compare_digest(
                    mac, record_mac(key, copy.record)):
                raise OffsiteError(
                    f"the offsite record of {copy.backup_id} is not signed with this key: it "
                    "was changed, or written without a key or with another; refused",
                    hint="if it was pushed before offsite_key_file was set, fetch it with no "
                         "key set; otherwise restore from another backup")

        if copy.encrypted:
            from gitrelease.state import offsite_crypt

            if key is None:
                raise offsite_crypt.OffsiteKeyError(
                    f"the offsite copy of {copy.backup_id} is encrypted (key "
                    f"{copy.record.get('key_id', '?')}) and no offsite_key_file is set")
        sealed = _scratch(target.parent, copy.backup_id) if copy.encrypted else target
        try:
            self._client.download_file(self.bucket, self._key("objects", copy.object),
                                       str(sealed), Config=self._transfer)
            if copy.encrypted and key is not None:
                from gitrelease.state import offsite_crypt

                offsite_crypt.decrypt_file(key, sealed, target)
            os.chmod(target, 0o600)
            if target.stat().st_size != copy.size or sha256_file(target) != copy.sha256:
                raise OffsiteError(f"the offsite copy of {copy.backup_id} is not what was "
                                   "uploaded (its sha256 differs): it was changed or damaged",
                                   hint="restore from another backup; run backup verify "
                                        "--offsite")
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(f"download {copy.backup_id}", exc) from None
        except GitReleaseError:
            raise
        except OSError as exc:  # the local disk: full, or the folder gone
            raise OffsiteError(f"could not write the copy of {copy.backup_id} here: "
                               f"{exc.strerror or exc}") from None
        except Exception as exc:  # s3transfer giving up (retries exceeded), wrapped errors
            cause = exc.__cause__ or exc.__context__
            raise self._failed(f"download {copy.backup_id}", cause if isinstance(
                cause, BotoCoreError | ClientError) else exc) from None
        finally:
            if sealed != target:
                sealed.unlink(missing_ok=True)

    def delete(self, backup_id: str) -> None:
        """Remove the backup's record, then its archive unless another record names it."""
        self._delete([backup_id], self.copies())

    def prune(self, doomed: list[str]) -> list[str]:
        """Delete these backups' copies under a prune lock (`OffsiteBusy` while an upload is
        under way); the ids deleted."""
        with self._lock("prune", against=("upload", "prune")):
            return self._delete(doomed, self.copies())

    def _delete(self, doomed: list[str], copies: list[OffsiteCopy]) -> list[str]:
        gone: list[str] = []
        for backup_id in doomed:
            copy = next((c for c in copies if c.backup_id == backup_id), None)
            if copy is None:
                continue
            self._call(f"delete {backup_id}", "delete_object", Bucket=self.bucket,
                       Key=self._key("backups", f"{backup_id}.json"))
            copies = [c for c in copies if c.backup_id != backup_id]
            if not any(c.object == copy.object for c in copies):
                self._call(f"delete {backup_id}", "delete_object", Bucket=self.bucket,
                           Key=self._key("objects", copy.object))
            gone.append(backup_id)
        return gone


def _scratch(directory: Path, backup_id: str) -> Path:
    """A fresh temporary name in `directory` that a sweep of leftovers recognises."""
    fd, name = tempfile.mkstemp(prefix=f".tmp-offsite-{backup_id}-", dir=directory)
    os.close(fd)
    return Path(name)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")
