"""The local network of `make devnet`: every part on loopback, embedded defaults.

Per participant an ML node (torch engine, the default model) and an API node (OpenAI
endpoint, transfer agent, executor); one chain: a solo node, or one CometBFT validator per
participant. `layout.py` lays out and resumes the directory, `supervisor.py` runs the
processes, `__main__.py` ties them together.
"""
