"""The README's fenced code blocks, as tests/test_devnet.py runs them against a devnet.

Every block runs unless the line right before its fence is an HTML comment
``<!-- not run: why -->`` (invisible on the rendered page), so a new example is tested as soon
as it is written, and one that cannot run says why instead of being guessed at.
"""

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT

README = ROOT / "README.md"
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"^<!-- not run: \S.*-->[ \t]*$")
INTERPRETERS = {"python": [sys.executable, "-c"],
                "sh": ["bash", "-euo", "pipefail", "-c"],
                "bash": ["bash", "-euo", "pipefail", "-c"]}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    runs: bool

    def command(self) -> list[str]:
        """The argv that runs the block; a block of another language must be marked."""
        if self.language not in INTERPRETERS:
            raise ValueError(f"README.md:{self.line}: a ```{self.language} block cannot run; "
                             f"mark it <!-- not run: why --> or use one of {sorted(INTERPRETERS)}")
        return [*INTERPRETERS[self.language], self.code]


def readme_blocks(path: Path = README) -> list[Block]:
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append(Block(line=text.count("\n", 0, match.start()) + 1,
                            language=match.group(1), code=match.group(2),
                            runs=not NOT_RUN.match(before)))
    return blocks
