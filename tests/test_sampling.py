"""The seeded inverse-CDF rule on hand-made distributions, where the answer is known."""

import math

import pytest
import torch

from mlnode.rule_check import obeys_rule
from mlnode.sampling import (
    SamplingParams,
    adjust,
    cumulative,
    distribution,
    draw,
    locate,
    uniform,
)


def logits_of(probs: list[float]) -> torch.Tensor:
    return torch.tensor([math.log(p) if p > 0 else -math.inf for p in probs])


def test_uniform_is_a_deterministic_function_of_seed_and_position():
    values = [uniform(7, i) for i in range(1000)]
    assert values == [uniform(7, i) for i in range(1000)]
    assert values != [uniform(8, i) for i in range(1000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.05


def test_draw_picks_the_first_token_whose_cumulative_probability_exceeds_u():
    logits = logits_of([0.1, 0.2, 0.3, 0.4])
    params = SamplingParams(temperature=1.0, seed=3)
    for position in range(200):
        u = uniform(3, position)
        expected = next(i for i, c in enumerate([0.1, 0.3, 0.6, 1.0]) if c > u)
        assert draw(logits, params, position) == expected


def test_draw_frequencies_follow_the_distribution():
    logits = logits_of([0.5, 0.25, 0.25])
    params = SamplingParams(temperature=1.0, seed=11)
    counts = torch.bincount(torch.tensor([draw(logits, params, i) for i in range(4000)]))
    assert counts.tolist() == pytest.approx([2000, 1000, 1000], rel=0.1)


def test_temperature_zero_is_argmax():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert all(draw(logits, SamplingParams(temperature=0.0, seed=s), s) == 1 for s in range(20))


def test_top_k_and_top_p_remove_the_tail_before_renormalising():
    logits = logits_of([0.05, 0.4, 0.3, 0.25])
    top2 = distribution(logits, SamplingParams(top_k=2))
    assert top2.tolist() == pytest.approx([0.0, 0.4 / 0.7, 0.3 / 0.7, 0.0])
    nucleus = distribution(logits, SamplingParams(top_p=0.65))
    assert nucleus.tolist() == pytest.approx([0.0, 0.4 / 0.7, 0.3 / 0.7, 0.0])
    assert float(cumulative(nucleus)[-1]) == 1.0


def test_locate_and_obeys_rule_accept_the_drawn_token_and_reject_others():
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(temperature=0.8, top_p=0.9, seed=5)
    for position in range(50):
        token = draw(logits, params, position)
        assert obeys_rule(locate(logits, params, position, token), greedy=False)
        wrong = (token + 1) % 1000
        assert not obeys_rule(locate(logits, params, position, wrong), greedy=False)


def test_a_token_outside_the_nucleus_never_obeys_the_rule():
    logits = logits_of([0.05, 0.4, 0.3, 0.25])
    params = SamplingParams(top_p=0.65, seed=1)
    assert not any(obeys_rule(locate(logits, params, i, 0), greedy=False) for i in range(100))


def test_adjust_is_openais_penalty_and_bias_formula_over_the_output_so_far():
    logits = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=0.25,
                            logit_bias=((0, 10.0), (4, -3.0)))
    previous = [1, 1, 1, 3]
    expected = [1.0 + 10.0, 2.0 - 0.5 - 3 * 0.25, 3.0, 4.0 - 0.5 - 0.25, 5.0 - 3.0]
    assert adjust(logits, params, previous).tolist() == pytest.approx(expected)
    assert adjust(logits, SamplingParams(), previous).tolist() == logits.tolist()
    assert logits.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # the model's logits are left alone


def test_a_bias_of_plus_100_makes_a_token_the_greedy_pick_and_minus_100_bans_the_argmax():
    logits = logits_of([0.05, 0.7, 0.2, 0.05])
    greedy = SamplingParams(temperature=0.0)
    assert draw(logits, greedy, 0) == 1
    assert draw(logits, SamplingParams(temperature=0.0, logit_bias=((3, 100.0),)), 0) == 3
    assert draw(logits, SamplingParams(temperature=0.0, logit_bias=((1, -100.0),)), 0) == 2
    sampled = SamplingParams(temperature=1.0, seed=5, logit_bias=((1, -100.0),))
    assert all(draw(logits, sampled, i) != 1 for i in range(300))


def test_penalties_lower_the_repeated_token_and_the_rule_check_needs_the_same_history():
    logits = logits_of([0.6, 0.3, 0.1])
    params = SamplingParams(temperature=0.0, frequency_penalty=2.0)
    assert draw(logits, params, 0, []) == 0
    assert draw(logits, params, 1, [0]) == 1  # 0 repeated once costs it 2.0 of logit
    assert obeys_rule(locate(logits, params, 1, 1, [0]), greedy=True)
    assert not obeys_rule(locate(logits, params, 1, 1, []), greedy=True)
    sampled = SamplingParams(temperature=1.0, seed=11, presence_penalty=2.0,
                             frequency_penalty=1.0)
    output: list[int] = []
    for position in range(50):
        token = draw(logits, sampled, position, output)
        assert obeys_rule(locate(logits, sampled, position, token, output), greedy=False)
        output.append(token)
    plain = [draw(logits, SamplingParams(temperature=1.0, seed=11), i) for i in range(50)]
    assert output.count(0) < plain.count(0)
