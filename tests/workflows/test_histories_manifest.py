"""Saved histories are append-only: each file is listed in MANIFEST.sha256 with its hash.

A history re-recorded in place would make the replay test check only the newest shape of the
workflow, never the invoices already running on an older build. A new history comes with a
new name and a new manifest line (`python -m tests.workflows.record_histories RELEASE`).
"""

from __future__ import annotations

from tests.workflows.record_histories import HISTORIES, manifest, sha256


def test_every_saved_history_is_in_the_manifest() -> None:
    unlisted = sorted(p.name for p in HISTORIES.glob("*.json") if p.name not in manifest())
    assert not unlisted, f"not in MANIFEST.sha256 (record with record_histories): {unlisted}"


def test_no_listed_history_is_gone() -> None:
    gone = sorted(name for name in manifest() if not (HISTORIES / name).exists())
    assert not gone, f"listed in MANIFEST.sha256 but deleted: {gone}"


def test_no_saved_history_changed() -> None:
    changed = sorted(
        name
        for name, digest in manifest().items()
        if (HISTORIES / name).exists() and sha256(HISTORIES / name) != digest
    )
    assert not changed, f"saved histories never change; record under a new name: {changed}"


def test_the_manifest_lists_each_file_once() -> None:
    names = [line.split()[1] for line in (HISTORIES / "MANIFEST.sha256").read_text().splitlines()]
    assert len(names) == len(set(names)), "a history listed twice in MANIFEST.sha256"
