"""A failed end-to-end test reports each of its processes' warnings, errors and last lines,
bounded, whatever the logs hold."""

from failure_logs import LAST_PER_LOG, NOTABLE_PER_LOG, excerpts


def test_each_log_shows_its_warnings_errors_and_last_lines(tmp_path):
    node = tmp_path / "participant0"
    node.mkdir()
    (node / "apinode.log").write_text(
        "2026-12-04 10:00:00,000 INFO apinode: listening\n"
        "2026-12-04 10:00:01,000 WARNING apinode.outbox_worker: outbox: will retry 1 entries\n"
        + "".join(f"2026-12-04 10:00:02,000 INFO apinode: step {n}\n" for n in range(20)))
    (tmp_path / "node.log").write_text(
        "I[2026-12-04|10:00:00.000] Started node\n"
        "E[2026-12-04|10:00:01.000] Stopping peer for error\n"
        "Traceback (most recent call last):\n")
    text = excerpts(tmp_path)
    assert "== node.log (3 lines, 2 notable shown)" in text
    assert "E[2026-12-04|10:00:01.000] Stopping peer for error" in text
    assert "== participant0/apinode.log (22 lines, 1 notable shown)" in text
    assert "outbox: will retry 1 entries" in text
    assert "step 19" in text and f"step {19 - LAST_PER_LOG}" not in text
    assert "listening" not in text


def test_a_flood_of_errors_and_undecodable_bytes_stay_bounded(tmp_path):
    (tmp_path / "chain.log").write_bytes(
        b"".join(b"ERROR x %d \xff\xfe" % n + b"y" * 1000 + b"\n" for n in range(500)))
    text = excerpts(tmp_path)
    assert "ERROR x 499" in text and "ERROR x 400 " not in text
    assert len(text.splitlines()) == 1 + NOTABLE_PER_LOG + 1 + LAST_PER_LOG
    assert max(len(line) for line in text.splitlines()) <= 300


def test_no_logs_no_report(tmp_path):
    assert excerpts(tmp_path) == ""


def test_the_processes_logs_come_first_and_leveldb_files_are_left_out(tmp_path):
    """A devnet's ``logs`` folder is what explains a failure; CometBFT's LevelDB keeps binary
    ``.log`` files in its ``*.db`` folders, which would crowd the processes' logs out."""
    store = tmp_path / "chain" / "val0" / "data" / "blockstore.db"
    store.mkdir(parents=True)
    (store / "000003.log").write_bytes(b"\x00\x01ERROR blockStore\xff\n")
    (tmp_path / "chain" / "val0" / "cometbft.log").write_text("E[2026-12-04] peer gone\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "apinode0.log").write_text("WARNING outbox: will retry\n")
    text = excerpts(tmp_path)
    assert "blockstore.db" not in text and "blockStore" not in text
    assert text.index("== logs/apinode0.log") < text.index("== chain/val0/cometbft.log")
