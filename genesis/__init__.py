"""Genesis templates and the builder that turns them into a CometBFT genesis.json, plus the
layouts that write ready-to-run node homes (a CometBFT local network, or one solo home)."""

from genesis.account_keys import AccountKey, generate_account_keys
from genesis.builder import build_app_state, build_genesis, genesis_json, write_genesis
from genesis.homes import NodeInfo, NodePorts
from genesis.localnet import layout_localnet
from genesis.solo import layout_solo
from genesis.template import Template, TemplateError, load_template, parse_template

__all__ = [
    "AccountKey",
    "NodeInfo",
    "NodePorts",
    "Template",
    "TemplateError",
    "build_app_state",
    "build_genesis",
    "generate_account_keys",
    "genesis_json",
    "layout_localnet",
    "layout_solo",
    "load_template",
    "parse_template",
    "write_genesis",
]
