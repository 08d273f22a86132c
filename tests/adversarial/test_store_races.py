"""What happens to a store entry (stores.py: image-cache/<x>/, session leftovers, tmp claude-<uid>/
folders …) while it is being removed: its store dir moved out of the Claude dir, a file appended or created
deep inside it after its check, the entry swapped for a symlink or another dir. Nothing outside the Claude
dir (or the cache and tmp dirs) changes, nothing written after the check is lost, and a change is reported
(exit 1). Real processes, real files; the races are made deterministic by the pause points
(JANITOR_TEST_PAUSE_AT, claude_janitor/testhooks.py) or run at random in a loop."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
from pathlib import Path

import pytest

from claude_janitor.audit.verify import verify as verify_audit
from tests.helpers import run_cli
from tests.helpers.cachegen import DAY
from tests.helpers.races import Paused, tree_state

STAGE = ".janitor-removing"
OLD = 40 * DAY


def age(path: Path, t: float) -> None:
    """``path`` and everything below it get the mtime ``t`` (deepest first), never following links."""
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (t, t), follow_symlinks=False)
    os.utime(path, (t, t), follow_symlinks=False)


def make_entry(path: Path, t: float, tag: str = "x") -> dict[str, bytes]:
    """A store entry that is a dir with files at several depths, all of time ``t``; its files' contents."""
    files = {
        "a.png": b"image " + tag.encode(),
        "sub/b.bin": b"bytes " + tag.encode(),
        "sub/deeper/c.txt": b"deep " + tag.encode(),
    }
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    age(path, t)
    return files


class Place:
    """One store whose entries are dirs: where it is, the dir holding its entries, and its env."""

    def __init__(self, kind: str, root: Path, jenv: dict[str, str]) -> None:
        self.kind = kind
        if kind == "image-cache":
            self.base, self.store_dir, self.env = root, root / "image-cache", jenv
        elif kind == "session-leftovers":
            self.base, self.store_dir, self.env = root, root / "file-history", jenv
        else:  # the tmp dir's claude-<uid>/speculation/ (only for the user's own Claude dir)
            self.base = Path(jenv["CLAUDE_CODE_TMPDIR"])
            self.store_dir = self.base / f"claude-{os.getuid()}"
            self.env = {**jenv, "CLAUDE_CONFIG_DIR": str(root)}
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.key = "tmp" if kind == "tmp" else kind

    def entry(self, n: int = 0) -> Path:
        if self.kind == "tmp":
            assert n == 0
            return self.store_dir / "speculation"
        if self.kind == "session-leftovers":  # a uuid would make it an orphan session's piece
            return self.store_dir / f"not-a-session-{n}"
        return self.store_dir / f"0c5e8a6e-4a48-4f7e-8c4c-5d2f0a7d1e1{n}"

    def stage_left(self) -> list[str]:
        """What is left in this place's staging dir (none, once a sweep is done)."""
        for name in (STAGE, f"{STAGE}-{os.getuid()}"):
            d = self.base / name
            if d.is_dir():
                return os.listdir(d)
        return []


def sweep(root: Path, now: float) -> list[str]:
    return ["sweep", "--json", "--claude-dir", str(root), "--now", str(now)]


def store_result(out: str, key: str) -> dict:
    (sd,) = [d for d in json.loads(out)["stores"] if d["store"] == key]
    return sd


def contents(top: Path) -> list[bytes]:
    return sorted(v for v in tree_state(top).values() if isinstance(v, bytes)) if top.exists() else []


KINDS = ["image-cache", "session-leftovers", "tmp"]


# ---- (a) the store dir moved out of the Claude dir mid-removal ------------------------------------


@pytest.mark.parametrize("point", ["store-before-remove", "removal-staged", "removal-verified", "rmtree-opened"])
@pytest.mark.parametrize("kind", ["image-cache", "tmp"])
def test_a_store_dir_moved_out_mid_removal_keeps_every_file_at_its_new_place(kind, point, root, jenv, now, tmp_path):
    pl = Place(kind, root, jenv)
    entry = pl.entry()
    files = make_entry(entry, now - OLD)
    (pl.store_dir / "unrelated.keep").write_bytes(b"not a store entry of this family")
    elsewhere = tmp_path / "elsewhere" / pl.store_dir.name
    elsewhere.parent.mkdir()
    run = Paused(sweep(root, now), pl.env, point, tmp_path / "hook")
    os.rename(pl.store_dir, elsewhere)  # the sweep holds an fd of this dir: it follows it out
    moved = tree_state(elsewhere)
    p = run.release()
    after = tree_state(elsewhere)
    assert all(after.get(k) == v for k, v in moved.items()), (moved, after)  # nothing at the new place went
    sd = store_result(p.stdout, pl.key)
    if point in ("store-before-remove", "removal-staged"):
        # not verified inside the Claude dir: kept, put back where it came from (the moved dir), reported
        assert p.returncode == 1, p.stdout + p.stderr
        assert sd["failed"] == 1 and sd["removed"] == 0, sd
        assert {k: after.get(f"{entry.name}/{k}") for k in files} == files
        assert set(after) - set(moved) <= {entry.name, *(f"{entry.name}/{k}" for k in ["sub", "sub/deeper", *files])}
    else:
        # verified inside the Claude dir before the move: its staged copy went, nothing else
        assert p.returncode == 0, p.stdout + p.stderr
        assert sd["removed"] == 1 and after == moved
    assert pl.stage_left() == []


# ---- (b) written to after the check -------------------------------------------------------------


@pytest.mark.parametrize("how", ["append-deep", "new-file-deep", "replace-deep"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_store_dir_written_to_after_its_check_is_kept(kind, how, root, jenv, now, tmp_path):
    pl = Place(kind, root, jenv)
    entry = pl.entry()
    make_entry(entry, now - OLD)
    run = Paused(sweep(root, now), pl.env, "store-before-remove", tmp_path / "hook")
    new = b"written by Claude Code after the check\n"
    deep = entry / "sub" / "deeper" / "c.txt"
    if how == "append-deep":
        with open(deep, "ab") as f:
            f.write(new)
    elif how == "new-file-deep":
        (entry / "sub" / "deeper" / "new.png").write_bytes(new)
    else:
        tmp = deep.with_name("tmp")
        tmp.write_bytes(new)
        os.rename(tmp, deep)
    p = run.release()
    assert p.returncode == 1, p.stdout + p.stderr
    sd = store_result(p.stdout, pl.key)
    assert sd["failed"] == 1 and sd["removed"] == 0, sd
    assert any("changed" in e for e in sd["errors"]), sd
    assert any(new in c for c in contents(entry))  # the new bytes, at their place
    assert pl.stage_left() == []


def test_a_store_file_appended_deep_in_a_second_entry_keeps_only_that_entry(root, jenv, now, tmp_path):
    pl = Place("image-cache", root, jenv)
    first, second = pl.entry(0), pl.entry(1)
    make_entry(first, now - OLD, "one")
    make_entry(second, now - OLD, "two")
    run = Paused(sweep(root, now), pl.env, "store-before-remove@2", tmp_path / "hook")
    assert not first.exists()  # the first one went: it was not touched after its check
    with open(second / "sub" / "b.bin", "ab") as f:
        f.write(b"+appended")
    p = run.release()
    assert p.returncode == 1, p.stdout + p.stderr
    sd = store_result(p.stdout, "image-cache")
    assert (sd["removed"], sd["failed"]) == (1, 1), sd
    assert (second / "sub" / "b.bin").read_bytes() == b"bytes two+appended"


# ---- (c) swapped for a symlink or another dir ----------------------------------------------------


@pytest.mark.parametrize("point", ["store-before-remove", "removal-staged"])
@pytest.mark.parametrize("swap", ["symlink", "other-dir"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_store_dir_swapped_after_its_check_is_not_followed_nor_lost(kind, swap, point, root, jenv, now, tmp_path):
    pl = Place(kind, root, jenv)
    entry = pl.entry()
    make_entry(entry, now - OLD)
    outside = tmp_path / "outside"
    make_entry(outside, now - OLD, "precious")
    before_outside = tree_state(outside)
    run = Paused(sweep(root, now), pl.env, point, tmp_path / "hook")
    if entry.exists():  # at removal-staged it is already in the staging dir
        os.rename(entry, tmp_path / "old-entry")
    if swap == "symlink":
        entry.symlink_to(outside)
    else:
        other = tmp_path / "other"
        make_entry(other, now - OLD, "other")  # as old as the one checked: only its identity differs
        os.rename(other, entry)
    p = run.release()
    assert p.returncode == 1, p.stdout + p.stderr
    assert tree_state(outside) == before_outside  # never followed
    sd = store_result(p.stdout, pl.key)
    assert sd["removed"] == 0 and sd["failed"] == 1, sd
    if swap == "other-dir":  # what took its place is not what was checked: it stays
        assert contents(entry) == sorted([b"image other", b"bytes other", b"deep other"])
    else:
        assert entry.is_symlink()
    if point == "removal-staged":  # the checked one could not go back (its name is taken): kept, named
        left = pl.stage_left()
        assert len(left) == 1 and left[0].endswith(".kept"), left
        assert any("back by hand" in e or "is kept in" in e for e in sd["errors"]), sd
    else:
        assert pl.stage_left() == []


# ---- a store dir that vanished meanwhile is not a failure ---------------------------------------


def test_a_store_dir_removed_by_claude_code_meanwhile_is_counted_vanished(root, jenv, now, tmp_path):
    pl = Place("image-cache", root, jenv)
    entry = pl.entry()
    make_entry(entry, now - OLD)
    run = Paused(sweep(root, now), pl.env, "store-before-remove", tmp_path / "hook")
    shutil.rmtree(entry)  # Claude Code's own start wiped it
    p = run.release()
    assert p.returncode == 0, p.stdout + p.stderr
    sd = store_result(p.stdout, "image-cache")
    assert (sd["vanished"], sd["failed"], sd["removed"]) == (1, 0, 0), sd


# ---- randomized: every pause point, every kind of interference -----------------------------------


def test_random_interference_never_loses_a_byte_nor_touches_outside(root, jenv, now, tmp_path):
    rng = random.Random(12)
    outside = tmp_path / "outside"
    make_entry(outside, now - OLD, "precious")
    before_outside = tree_state(outside)
    points = ["store-before-remove", "removal-staged", "removal-verified", "removal-committed", "rmtree-opened"]
    hows = ["move-store-dir-out", "append-deep", "new-file-deep", "swap-symlink", "swap-dir", "nothing"]
    for i in range(12):
        kind = rng.choice(KINDS)
        pl = Place(kind, root, jenv)
        entry = pl.entry()
        make_entry(entry, now - OLD, f"r{i}")
        point, how = rng.choice(points), rng.choice(hows)
        hook = tmp_path / f"hook{i}"
        written = b""
        run = Paused(sweep(root, now), pl.env, point, hook)
        moved_to = tmp_path / f"moved{i}"
        if how == "move-store-dir-out":
            os.rename(pl.store_dir, moved_to)
            moved = tree_state(moved_to)
        elif how in ("append-deep", "new-file-deep"):
            # by path, as Claude Code writes: into the checked entry, or (once it is staged) a new one
            written = f"written {i}\n".encode()
            target = entry / "sub" / "deeper" / ("c.txt" if how == "append-deep" else "new.txt")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "ab") as f:
                f.write(written)
        elif how.startswith("swap") and entry.exists():
            os.rename(entry, tmp_path / f"swapped-out{i}")
            if how == "swap-symlink":
                entry.symlink_to(outside)
            else:
                make_entry(tmp_path / f"other{i}", now - OLD, f"other{i}")
                os.rename(tmp_path / f"other{i}", entry)
        p = run.release()
        assert p.returncode in (0, 1), (i, kind, point, how, p.stdout + p.stderr)
        assert tree_state(outside) == before_outside, (i, kind, point, how)
        if how == "move-store-dir-out":
            after = tree_state(moved_to)
            assert all(after.get(k) == v for k, v in moved.items()), (i, kind, point, how)
        if written:
            assert any(written in c for c in contents(entry)), (i, kind, point, how, p.stdout)
            if point in ("store-before-remove", "removal-staged"):  # not yet verified: the checked one stays
                assert p.returncode == 1, (i, kind, point, how)
        # clean up for the next round (by hand: not the janitor's business)
        for d in (pl.store_dir, moved_to):
            if d.is_symlink() or d.is_file():
                d.unlink()
            elif d.exists():
                shutil.rmtree(d)
        for n in pl.stage_left():
            assert n.endswith(".kept"), (i, kind, point, how, n)
        for name in (STAGE, f"{STAGE}-{os.getuid()}"):
            if (pl.base / name).exists():
                shutil.rmtree(pl.base / name)
    p = run_cli(sweep(root, now), jenv)
    assert p.returncode == 0, p.stdout + p.stderr


def test_store_dirs_are_staged_inside_their_place_never_elsewhere(root, jenv, now, tmp_path):
    """The tmp dir's staging dir is the janitor's own (per uid, 0700) and gone after the sweep."""
    pl = Place("tmp", root, jenv)
    make_entry(pl.entry(), now - OLD)
    run = Paused(sweep(root, now), pl.env, "removal-staged", tmp_path / "hook")
    stage = pl.base / f"{STAGE}-{os.getuid()}"
    st = stage.stat()
    assert st.st_uid == os.getuid() and st.st_mode & 0o077 == 0
    assert not (root / STAGE).exists() or os.listdir(root / STAGE) == []
    p = run.release()
    assert p.returncode == 0, p.stdout + p.stderr
    assert not pl.entry().exists() and not stage.exists()


def test_a_foreign_staging_dir_in_the_tmp_dir_is_refused(root, jenv, now, tmp_path):
    pl = Place("tmp", root, jenv)
    entry = pl.entry()
    files = make_entry(entry, now - OLD)
    stage = pl.base / f"{STAGE}-{os.getuid()}"
    stage.mkdir()
    stage.chmod(0o777)  # writable by anyone (another user could rename what is staged): never used
    if os.geteuid() == 0:
        os.chown(stage, 4242, 4242)  # and another user's
    p = run_cli(sweep(root, now), pl.env)
    assert p.returncode == 1, p.stdout + p.stderr
    assert {k: (entry / k).read_bytes() for k in files} == files
    assert os.listdir(stage) == []
    assert any("staging" in e or STAGE in e for e in store_result(p.stdout, "tmp")["errors"])


# ---- kill -9 at every step of a store entry's removal, then the next sweep ----------------------


@pytest.mark.parametrize(
    "point", ["removal-staged:1", "removal-verified:1", "removal-committed:1", "removal-purging:1", "rmtree-opened:1"]
)
@pytest.mark.parametrize("kind", ["image-cache", "tmp"])
def test_kill_while_a_store_entry_is_removed_then_the_next_sweep_finishes(kind, point, root, jenv, now):
    pl = Place(kind, root, jenv)
    entry = pl.entry()
    make_entry(entry, now - OLD)
    p = run_cli(sweep(root, now), dict(pl.env, JANITOR_TEST_KILL_AT=point))
    assert p.returncode == -signal.SIGKILL, p.stdout + p.stderr
    staged = pl.stage_left()
    assert len(staged) == 1 and not staged[0].endswith(".kept"), staged  # the removal in hand, in its state
    p = run_cli(sweep(root, now), pl.env)
    assert p.returncode == 0, p.stdout + p.stderr
    said = json.dumps(json.loads(p.stdout))
    assert f"an entry of store {pl.key}" in said, said
    assert pl.stage_left() == []
    if kind == "tmp" and point.startswith(("removal-staged", "removal-verified")):
        # undone, back in place (the tmp dir's removals are recovered when its store is acted on, after the
        # scan): the following sweep removes it
        assert {k: (entry / k).read_bytes() for k in ["a.png", "sub/b.bin"]} == {
            "a.png": b"image x",
            "sub/b.bin": b"bytes x",
        }
        p = run_cli(sweep(root, now), pl.env)
        assert p.returncode == 0, p.stdout + p.stderr
    assert not entry.exists() and pl.stage_left() == []  # rolled back and removed again, or finished
    log = Path(jenv["XDG_STATE_HOME"]) / "claude-janitor" / "log" / "audit.jsonl"
    ok, msg, _ = verify_audit(log)
    assert ok, msg
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    assert any(r.get("action") == "recover-store" and r["store"] == pl.key for r in recs), recs
    assert "0c5e8a6e" not in log.read_text() and "speculation" not in log.read_text()  # counts, no names


# ---- files go in batches: one changed file keeps only itself ------------------------------------


def paste_files(root: Path, n: int, t: float) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        p = root / "paste-cache" / f"{i:016x}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"paste {i}\n".encode())
        os.utime(p, (t, t))
        out[p.name] = p.read_bytes()
    return out


def test_a_file_appended_in_a_batch_keeps_only_that_file(root, jenv, now, tmp_path):
    paste_files(root, 100, now - OLD)  # more than one batch
    victim = root / "paste-cache" / f"{3:016x}.txt"
    run = Paused(sweep(root, now), jenv, "store-before-remove@10", tmp_path / "hook")  # 3 is checked, staged later
    with open(victim, "ab") as f:
        f.write(b"appended\n")
    p = run.release()
    assert p.returncode == 1, p.stdout + p.stderr
    sd = store_result(p.stdout, "paste-cache")
    assert (sd["removed"], sd["failed"]) == (99, 1), sd
    assert os.listdir(root / "paste-cache") == [victim.name]
    assert victim.read_bytes() == b"paste 3\nappended\n"
    assert os.listdir(root / STAGE) == []


@pytest.mark.parametrize("point", ["removal-staged", "removal-verified"])
def test_the_store_dir_of_a_batch_moved_out_keeps_every_file(point, root, jenv, now, tmp_path):
    files = paste_files(root, 100, now - OLD)
    elsewhere = tmp_path / "elsewhere"
    run = Paused(sweep(root, now), jenv, point, tmp_path / "hook")  # the first batch is staged (or verified)
    os.rename(root / "paste-cache", elsewhere)
    moved = tree_state(elsewhere)
    p = run.release()
    after = tree_state(elsewhere)
    assert all(after.get(k) == v for k, v in moved.items())  # nothing at the new place went
    sd = store_result(p.stdout, "paste-cache")
    assert p.returncode == 1, p.stdout + p.stderr
    if point == "removal-staged":  # not verified: the staged batch goes back into the moved dir
        assert after == files and sd["removed"] == 0, sd
    else:  # the first batch was verified inside the Claude dir: it went; the rest stays where it is now
        assert sd["removed"] == 64 and len(after) == 36 and all(files[k] == v for k, v in after.items()), sd
    assert sd["failed"] == 100 - sd["removed"], sd
    assert os.listdir(root / STAGE) == []
