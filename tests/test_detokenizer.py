"""Streaming text: stop sequences are cut cleanly and never half-streamed."""

from mlnode.detokenizer import StreamText

WORDS = ["Hello", " wor", "ld", ".", " END", " more"]


def decode(ids):
    return "".join(WORDS[i] for i in ids)


def stream(stop):
    text = StreamText(decode, stop)
    pieces = []
    for n in range(1, len(WORDS) + 1):
        pieces.append(text.push(list(range(n))))
        if text.stopped:
            break
    else:
        pieces.append(text.flush(list(range(len(WORDS)))))
    return pieces, text.stopped


def test_without_stop_sequences_every_piece_streams_as_it_comes():
    pieces, stopped = stream([])
    assert "".join(pieces) == "Hello world. END more" and not stopped
    assert pieces[0] == "Hello"


def test_a_stop_sequence_ends_the_text_before_it():
    pieces, stopped = stream([" END"])
    assert stopped and "".join(pieces) == "Hello world."


def test_a_possible_stop_prefix_is_held_back_until_it_resolves():
    pieces, stopped = stream(["world!"])
    assert pieces[1:4] == [" ", "", "world."]
    assert not stopped and "".join(pieces) == "Hello world. END more"


def test_an_incomplete_character_is_held_back():
    text = StreamText(lambda ids: "ab\ufffd" if len(ids) == 1 else "abc", [])
    assert text.push([1]) == "ab"
    assert text.push([1, 2]) == "c"
