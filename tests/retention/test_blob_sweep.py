"""Blob files outside the database: deleted after a purge commits, and swept later when that failed."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from service.evidence.blobs import BlobStore
from service.retention import CaseResult, RetentionService
from service.runtime import Runtime
from tests.support.retention import FileReport, WorkCase, blob_names, case_rows, files_on_disk, set_closure


def age(store: BlobStore, name: str, now: datetime, *, hours: float, partial: bool = False) -> None:
    """Set a blob file's modification time into the past, as if it had been written then."""
    path = store.path(name)
    when = (now - timedelta(hours=hours)).timestamp()
    os.utime(path.with_suffix(".part") if partial else path, (when, when))


def write_blob(store: BlobStore, *, complete: bool = True) -> str:
    name = store.new_name()
    with store.open_temp(name) as out:
        out.write(b"\x01sealed chunk")
    if complete:
        store.commit(name)
    return name


def test_the_sweep_removes_only_old_files_that_no_attachment_references(
    runtime: Runtime, file_report: FileReport, work_case: WorkCase, now: datetime
) -> None:
    """Given an old referenced blob, old and young unreferenced blobs, old and young partial uploads and a
    file the store did not name, then a dry run counts the two old unreferenced files and deletes nothing,
    and the sweep deletes just those two: a file younger than an hour may be an upload whose attachment row
    is not committed yet, and a referenced one belongs to a live case."""
    store = runtime.blobs
    filed = file_report()
    work_case(filed)
    (referenced,) = blob_names(runtime, filed.case_id)
    age(store, referenced, now, hours=48)
    old_orphan, young_orphan = write_blob(store), write_blob(store)
    age(store, old_orphan, now, hours=2)
    age(store, young_orphan, now, hours=0.5)
    old_part, young_part = write_blob(store, complete=False), write_blob(store, complete=False)
    age(store, old_part, now, hours=2, partial=True)
    foreign = store.root / referenced[:2] / "notes.txt"
    foreign.write_text("kept: not a blob name")
    os.utime(foreign, ((now - timedelta(days=9)).timestamp(),) * 2)
    before = files_on_disk(runtime)

    with runtime.sessions() as db:
        counted = runtime.retention.sweep_orphan_blobs(db, now, dry_run=True)
    assert counted == 2
    assert files_on_disk(runtime) == before

    with runtime.sessions() as db:
        removed = runtime.retention.sweep_orphan_blobs(db, now)

    assert removed == 2
    assert not store.exists(old_orphan)
    assert not store.path(old_part).with_suffix(".part").exists()
    assert store.exists(referenced)
    assert store.exists(young_orphan)
    assert store.path(young_part).with_suffix(".part").exists()
    assert foreign.exists()


class DiskRefusingDeletes(BlobStore):
    """A fault, not a mock: the real store on the same folder, whose deletes fail as on a read-only disk
    (the same state as a crash between the purge's commit and its file deletion)."""

    def delete(self, name: str) -> None:
        raise PermissionError("read-only file system")


def test_files_a_purge_could_not_delete_are_swept_on_a_later_run(
    runtime: Runtime, file_report: FileReport, work_case: WorkCase, now: datetime
) -> None:
    """Given a due case with a file, when its purge commits but the file cannot be deleted, then the case
    is purged all the same (its key is gone, so the file is unreadable), the report counts the file left
    behind, and once the file is older than the upload guard the sweep removes it."""
    filed = file_report()
    work_case(filed)
    (name,) = blob_names(runtime, filed.case_id)
    set_closure(runtime, filed.case_id, closed_at=now - timedelta(days=366), outcome="supported")
    retention = RetentionService(
        runtime.retention.policy, runtime.audit, DiskRefusingDeletes(runtime.blobs.root)
    )

    with runtime.sessions() as db:
        report = retention.purge(db, now, dry_run=False)
        db.commit()  # the task's transaction

    (case,) = report.cases
    assert case.result is CaseResult.purged
    assert case.leftover_blobs == 1
    assert case_rows(runtime, filed.case_id)["case_file"] == 0
    assert runtime.blobs.exists(name)

    with runtime.sessions() as db:
        assert runtime.retention.sweep_orphan_blobs(db, now) == 0, "too young: could be an upload"
    age(runtime.blobs, name, now, hours=2)
    with runtime.sessions() as db:
        assert runtime.retention.sweep_orphan_blobs(db, now) == 1
    assert not runtime.blobs.exists(name)
