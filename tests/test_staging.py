"""The staging area: the two-slot journal survives torn writes; commits are atomic renames."""

from __future__ import annotations

from pathlib import Path

from pullman.transfer.journal import Journal
from pullman.transfer.staging import Staging


def staged(tmp_path: Path) -> Staging:
    st = Staging(tmp_path / "stage", "k")
    st.open(1000, fresh=True)
    return st


def test_latest_slot_wins_and_a_torn_slot_falls_back(tmp_path: Path) -> None:
    st = staged(tmp_path)
    st.save_journal(Journal(size=1000, done=((0, 100),)))
    st.save_journal(Journal(size=1000, done=((0, 200),)))
    st.close()
    again = Staging(tmp_path / "stage", "k")
    loaded = again.load_journal()
    assert loaded is not None and loaded.done == ((0, 200),)
    # Tear the newest slot (sequence 2 lives in slot 0): the older one is used.
    raw = bytearray(st.journal_path.read_bytes())
    raw[30] ^= 0xFF
    st.journal_path.write_bytes(bytes(raw))
    loaded = Staging(tmp_path / "stage", "k").load_journal()
    assert loaded is not None and loaded.done == ((0, 100),)


def test_both_slots_damaged_means_start_over(tmp_path: Path) -> None:
    st = staged(tmp_path)
    st.save_journal(Journal(size=1000, done=((0, 100),)))
    st.close()
    st.journal_path.write_bytes(b"\xff" * st.journal_path.stat().st_size)
    assert Staging(tmp_path / "stage", "k").load_journal() is None


def test_journal_without_its_data_file_is_ignored(tmp_path: Path) -> None:
    st = staged(tmp_path)
    st.save_journal(Journal(size=1000, done=((0, 100),)))
    st.close()
    st.part.unlink()
    assert Staging(tmp_path / "stage", "k").load_journal() is None


def test_journal_grows_when_fragmented(tmp_path: Path) -> None:
    st = staged(tmp_path)
    spans = tuple((i * 4, i * 4 + 2) for i in range(20000))
    st.save_journal(Journal(size=100000, done=spans))
    st.save_journal(Journal(size=100000, done=spans[:10]))
    st.close()
    loaded = Staging(tmp_path / "stage", "k").load_journal()
    assert loaded is None  # the data file is only 1000 bytes: this journal is not its own
    st2 = Staging(tmp_path / "stage", "k")
    st2.part.write_bytes(bytes(100000))
    loaded = st2.load_journal()
    assert loaded is not None and loaded.done == spans[:10]


def test_commit_renames_into_place(tmp_path: Path) -> None:
    st = staged(tmp_path)
    st.write(0, [b"x" * 1000])
    dest = tmp_path / "final" / "file.bin"
    st.commit(dest)
    assert dest.read_bytes() == b"x" * 1000
    assert not st.part.exists() and not st.journal_path.exists()
