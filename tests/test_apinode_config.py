"""The API node's settings file: what it refuses before the node starts."""

import pytest

from apinode.config import ApiNodeConfig, write_home

TIMEOUTS = ["first_token_timeout_s", "token_gap_timeout_s", "delivery_wait_s"]


@pytest.mark.parametrize("name", TIMEOUTS)
@pytest.mark.parametrize("toml_value", ["0", "-1.5", '"30"', "true", "nan"])
def test_a_timeout_that_is_no_positive_number_is_refused(tmp_path, name, toml_value):
    write_home(tmp_path, {"chain_id": "c"}, "11" * 32)
    with (tmp_path / "apinode.toml").open("a") as toml:
        toml.write(f"{name} = {toml_value}\n")
    with pytest.raises(ValueError, match=f"{name} must be a positive number of seconds"):
        ApiNodeConfig.load(tmp_path)


def test_the_default_timeouts_load(tmp_path):
    write_home(tmp_path, {"chain_id": "c", "token_gap_timeout_s": 45}, "11" * 32)
    config = ApiNodeConfig.load(tmp_path)
    assert (config.first_token_timeout_s, config.token_gap_timeout_s,
            config.delivery_wait_s) == (120.0, 45, 30.0)
