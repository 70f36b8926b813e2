"""The API node's settings file: what it refuses before the node starts."""

import pytest

from apinode.config import ApiNodeConfig, write_home

TIMEOUTS = ["first_token_timeout_s", "token_gap_timeout_s", "delivery_wait_s"]


def refused(tmp_path, name: str, toml_value: str) -> ValueError:
    """What loading a settings file with ``name = toml_value`` raises."""
    write_home(tmp_path, {"chain_id": "c"}, "11" * 32)
    with (tmp_path / "apinode.toml").open("a") as toml:
        toml.write(f"{name} = {toml_value}\n")
    with pytest.raises(ValueError) as raised:
        ApiNodeConfig.load(tmp_path)
    return raised.value


@pytest.mark.parametrize("name", TIMEOUTS)
@pytest.mark.parametrize("toml_value", ["0", "-1.5", '"30"', "true", "nan"])
def test_a_timeout_that_is_no_positive_number_is_refused(tmp_path, name, toml_value):
    assert f"{name} must be a positive number of seconds" in str(
        refused(tmp_path, name, toml_value))


def test_the_default_timeouts_load(tmp_path):
    write_home(tmp_path, {"chain_id": "c", "token_gap_timeout_s": 45}, "11" * 32)
    config = ApiNodeConfig.load(tmp_path)
    assert (config.first_token_timeout_s, config.token_gap_timeout_s,
            config.delivery_wait_s) == (120.0, 45, 30.0)


@pytest.mark.parametrize(("name", "toml_value", "least"), [
    ("probes_per_epoch", "-1", 0), ("probes_per_epoch", "2.5", 0),
    ("probes_per_epoch", '"4"', 0), ("probes_per_epoch", "true", 0),
    ("probe_max_tokens", "0", 1), ("probe_max_tokens", "-8", 1)])
def test_a_probe_setting_that_is_no_whole_number_in_range_is_refused(tmp_path, name,
                                                                      toml_value, least):
    assert f"{name} must be a whole number, {least} or more" in str(
        refused(tmp_path, name, toml_value))


def test_probes_are_on_by_default_and_off_at_zero(tmp_path):
    write_home(tmp_path, {"chain_id": "c"}, "11" * 32)
    config = ApiNodeConfig.load(tmp_path)
    assert (config.probes_per_epoch, config.probe_max_tokens) == (4, 8)
    write_home(tmp_path, {"chain_id": "c", "probes_per_epoch": 0}, "11" * 32)
    assert ApiNodeConfig.load(tmp_path).probes_per_epoch == 0
