"""What a backup holds and how it is kept: the files and databases of a deployment
(`sources`), consistent database snapshots, the archive format, the backup service, and
where archives are stored (`archives.ArchiveStore`; the local folder today).

Where a change belongs:

- `sources`: which files a backup holds, member names, where a member is restored to
- `databases`: finding the bot's SQLite databases among the files git does not version
- `snapshot`: SQLite snapshots in and out (the backup API), integrity checks
- `archive`: one archive's tar format, written in one pass, opened for reading
- `compression`: the gzip/zstd streams under the tar
- `verification`: checking an archive against its sha256 and its manifest
- `unpack`: unpacking an archive into a staging dir, safely
- `placing`: a restore's staged files swapped into place, never through a link
- `restore_journal`, `restore_undo`: a restore's journal, and settling one a kill cut off
- `archives`: where archives are kept (`ArchiveStore`, `LocalArchiveStore`)
- `backup_options`: what callers pass (options, list filters) and its validation
- `backups`: `BackupService`, a backup's life: create, get, list, verify, delete
- `retention`: which backups a prune deletes, and which are protected
- `reconcile`: putting the index and the store in order after a crash or a lost index
- `upkeep`: the cheap look that says whether a reconcile is needed
"""
