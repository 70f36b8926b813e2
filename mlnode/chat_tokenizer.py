"""Text side of a model: ids from text or chat messages, and text from ids.

Both engines load the same Hugging Face tokenizer folder, so they share this wrapper and a
chat renders to the same ids whichever engine serves it.
"""

from collections.abc import Sequence
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase


class ChatTokenizer:
    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def from_folder(cls, path: Path) -> "ChatTokenizer":
        return cls(AutoTokenizer.from_pretrained(path))

    def __len__(self) -> int:
        return len(self._tokenizer)

    def tokenize(self, text: str) -> list[int]:
        """Plain text to ids, without special tokens added (the chat template adds its own)."""
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def render_chat(self, messages: Sequence[tuple[str, str]]) -> str:
        """(role, content) pairs to the prompt text of the model's chat template."""
        return self._tokenizer.apply_chat_template(
            [{"role": r, "content": c} for r, c in messages], add_generation_prompt=True,
            tokenize=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)
