"""A node's own settings (HOME/config/app.toml) out of their bounds stop it at start, with
the setting, its bounds and the file named, instead of a node that misbehaves later."""

import pytest

from chain.config import NodeConfig


@pytest.mark.parametrize(("line", "message"), [
    ("snapshot_interval = -1", "snapshot_interval must be an integer in 0..1000000"),
    ("snapshot_keep_recent = 0", "snapshot_keep_recent must be an integer in 1..100"),
    ("snapshot_chunk_bytes = 100", "snapshot_chunk_bytes must be an integer in 1024..8388608"),
    ("snapshot_chunk_bytes = true", "snapshot_chunk_bytes must be an integer"),
    ("history_keep_blocks = -1", "history_keep_blocks must be an integer in 0.."),
    ("min_retain_blocks = 1.5", "min_retain_blocks must be an integer in 0.."),
    ('history_keep_blocks = "all"', "history_keep_blocks must be an integer"),
    ('mode = "fast"', "mode must be one of"),
    ("unknown_setting = 1", "unknown settings"),
])
def test_a_setting_out_of_bounds_stops_the_node_at_start(tmp_path, line, message):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "app.toml").write_text(f"{line}\n")
    with pytest.raises(ValueError, match=message) as refused:
        NodeConfig.load(tmp_path)
    assert str(tmp_path / "config" / "app.toml") in str(refused.value)
