"""Economic security under the default parameters (docs/economics.md): a short version of
`python -m bench.economics`. The simulation plays strategies on the chain's own handlers
and block steps, in process, each against an honest run from the same genesis and draws,
with every coin audited at every height; the expected-value model covers the strategies
at the scale of a real epoch, at the end of each detection interval that favours the
cheater."""

import logging
from dataclasses import replace

import pytest

from bench.economics import model, rates
from bench.economics.model import Economy, Params
from bench.economics.simulation import (
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    Play,
    Setup,
    Simulation,
    compare,
)
from chain.epochs.params import EpochsParams
from chain.inference.params import InferenceParams
from chain.validation.params import ValidationParams

SETUP = Setup(members=4, epochs=2)
FRACTIONS = (0.01, 0.1, 0.5, 1.0)
COALITIONS = (0.1, 0.2, 0.33)
# What a single copied report would save its copier: one re-score at the simulation's fee.
# A copier's margin below it copied nothing.
COPY_TOLERANCE = SETUP.score_over_generate * SETUP.cost_share * \
    (PROMPT_TOKENS + OUTPUT_TOKENS) * 100
# What no parameter makes unprofitable (docs/economics.md, "What still pays"), per
# registered serving precision: the cheats no single check catches there.
UNDETECTED = {
    rates.FP32.name: set(),
    rates.HALF_PRECISION.name: {("int8", 8), ("int8", 32), ("int8", 128),
                                ("forge-prefill-int8", 8), ("forge-prefill-int8", 32)},
}
# The shielded cheats that still pay (the same section): a coalition near a third, whose
# members let their proposer turns pass when a vote's value does not suit them, leaves the
# half-precision registry's int8 forgery a detection too low to lose at f = 1 %.
SHIELDED_PAYING = {
    rates.FP32.name: set(),
    rates.HALF_PRECISION.name: {("forge-prefill-int8", 0.33)},
}


@pytest.fixture(scope="module", autouse=True)
def quiet_chain():
    logging.disable(logging.WARNING)  # every forfeit is logged; the assertions say it
    yield
    logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def baseline():
    return Simulation(SETUP, Play()).run()


def last_height(setup: Setup) -> int:
    return setup.epochs * setup.epoch_length + 10


def test_an_honest_run_settles_every_epoch_and_conserves_coins_at_every_height(baseline):
    # The Ledger asserts conservation after each block; the first block is genesis's.
    assert baseline.heights == last_height(SETUP) - 1
    assert baseline.lazy_epochs == baseline.invalid_epochs == baseline.invalidated == 0
    assert all(profit > 0 for profit in baseline.profits)  # launch: the reward is paid


@pytest.mark.parametrize("play, caught", [
    (Play("cheat", (0,), cheat="skip-layers", f=0.25), "invalidated"),
    (Play("cheat", (0,), cheat="wrong-seed", f=1.0), "invalid_epochs"),
    (Play("skip", (0,), lazy="skip", g=0.5), "lazy_epochs"),
    (Play("refuse", (0,), serving="refuse"), None),
    (Play("silent", (0,), serving="silent"), None),
])
def test_deviations_the_chain_punishes_earn_less_than_honest_play(baseline, play, caught):
    margin = compare(SETUP, play, baseline)
    assert margin.heights == last_height(SETUP) - 1  # audited at every height
    assert margin.margin < 0, (play, margin.honest, margin.deviant)
    if caught:
        assert getattr(margin.run, caught) > 0


def test_a_copier_finds_no_report_to_copy_and_earns_no_more_than_honest_play(baseline):
    """Reports are sealed until the window's sealing is over, so a copier looking a block
    later sees none: it re-scores every check it owes, as the model says."""
    margin = compare(SETUP, Play("copy", (0,), lazy="copy", g=1.0), baseline)
    assert margin.heights == last_height(SETUP) - 1
    assert margin.run.notes.get("copied", 0) == 0
    assert margin.run.lazy_epochs == 0
    assert margin.margin < COPY_TOLERANCE, (margin.honest, margin.deviant)
    params = Params()
    for regime in ("late", "launch"):
        for g in (0.1, 1.0):
            assert model.lazy_validator(params, Economy(regime=regime), "copy", g).margin == 0


def test_a_free_rider_gaining_in_a_short_late_run_is_left_behind_on_the_climb():
    """Late (no emission) and at reputation 0, serving loses money, so a member silent on
    every draw spends less over two epochs; but it climbs nothing while the honest seat
    climbs, and that climb, at the same loss, is still ahead of it (the model's row)."""
    setup = Setup(members=4, epochs=2, regime="late")
    margin = compare(setup, Play("silent", (0,), serving="silent"))
    deviant, honest = margin.reputation
    assert margin.run.notes["skipped"] > 0
    assert deviant < honest
    assert model.free_rider(Params(), Economy(), "silent", level=0).margin < 0


def test_a_validator_passing_without_computing_is_caught_by_its_canaries():
    """With a canary behind every inference the short run meets them for certain; the
    model below shows the default rate's expectation."""
    setup = Setup(members=4, epochs=2, canary_rate_ppm=1_000_000)
    margin = compare(setup, Play("blind", (0,), lazy="blind-pass", g=1.0))
    assert margin.run.lazy_epochs > 0
    assert margin.margin < 0
    # The honest members that failed the canaries opened their scores on the real artifacts:
    # the claims' votes closed on them, and no honest run was ever lazy.
    assert margin.baseline.notes["scores opened"] > 0
    assert margin.baseline.lazy_epochs == 0


@pytest.mark.parametrize("registry", rates.REGISTRIES, ids=lambda r: r.name)
def test_a_cheat_pays_only_where_no_check_detects_it(registry):
    """Every cheat class the checks can catch (the low end of its 95 % interval above 0)
    loses against honest play at every f, shielded or not by a coalition below a third;
    the undetected ones, and the half-precision forgery shielded by a coalition near a
    third, are the documented exceptions. Under the fp32 registry (the default genesis)
    there are none: int8 weights fail on distance, and the int8 forgery (int8 tokens, the
    real model's logprobs) on the rule, which fp32 holds without slack."""
    params, economy = Params(), Economy()
    longest = registry.lengths[-1]
    paying, shielded_paying = set(), set()
    for cheat in rates.CHEATS:
        for length in (registry.lengths[0], longest):
            low = registry.detection(cheat.name, length).interval[0]
            margins = [model.cheating_executor(params, economy, f, low, cheat.saving).margin
                       for f in FRACTIONS]
            if max(margins) >= 0:
                paying.add((cheat.name, length))
            if low > 0 and length == longest:
                for s in COALITIONS:
                    shielded = model.shielded_detection(low, s)
                    if any(model.cheating_executor(params, economy, f, shielded,
                                                   cheat.saving).margin >= 0
                           for f in FRACTIONS):
                        shielded_paying.add((cheat.name, s))
    assert paying == {p for p in UNDETECTED[registry.name]
                      if p[1] in (registry.lengths[0], longest)}
    assert shielded_paying == SHIELDED_PAYING[registry.name]


def test_the_defaults_make_the_other_strategies_lose_or_gain_nothing():
    params = Params()
    for regime in ("late", "launch"):
        economy = Economy(regime=regime)
        losing = [model.lazy_validator(params, economy, kind, g)
                  for kind in ("skip", "blind-pass", "withhold-scores") for g in (0.1, 1.0)]
        losing += [model.coalition_against_truth(params, economy, s, level)
                   for s in COALITIONS for level in (None, 0)]
        losing += [model.fabricated_nonces(params, economy, phi) for phi in (0.01, 0.1, 0.5)]
        # Free riding, whole or in part, at full reputation and during the climb from 0,
        # where serving loses money: what a free rider does not climb it climbs later.
        losing += [model.free_rider(params, economy, kind, level, served)
                   for kind in ("silent", "refuse") for level in (None, 0)
                   for served in (0.0, 0.5)]
        losing += [model.sybil_split(params, economy, share, 2) for share in (0.1, 0.2, 0.3)]
        # The agent's fee exceeds a start's tx fee: dropping requests or leaving the starts
        # to the executors' relays forgoes it.
        losing += [model.transfer_agent(params, economy, kind)
                   for kind in ("drop", "withhold-start")]
        # Passing a live pick needs a notice it claims: the request goes to it after all, and
        # the agent has paid for the notice.
        losing.append(model.transfer_agent(params, economy, "skip-to-accomplice"))
        # Each variant of an API-key request the agent commits and drops burns its forfeit,
        # more than the one more draw it buys is worth, however many it tries.
        losing += [model.transfer_agent(params, economy, "favour-accomplice", tries)
                   for tries in (2, 3, 16, 1000)]
        for outcome in losing:
            assert outcome.margin < 0, (regime, outcome)
        # An API-key start never names its own agent: re-stamping for itself changes nothing.
        assert model.transfer_agent(params, economy, "favour-self").margin == 0
        # The reference prover screens nonces as well as any search measured: proving
        # without its shortcuts loses weight, and no other keep share gains any.
        screens = [model.poc_screen(params, economy, name, gain)
                   for name, gain in rates.POC_SCREENS.items()]
        assert all(s.margin < 0 if gain < 1 else s.margin == 0
                   for s, gain in zip(screens, rates.POC_SCREENS.values(), strict=True))
        assert max(rates.POC_SCREENS.values()) <= 1.0
        # A checked canary's vote closes on its checkers' scores: a voter has no re-score
        # to save by following the window's reports.
        follower = model.vote_follower(params, economy)
        assert follower.margin == follower.sd == 0, regime


def test_a_member_that_does_not_probe_loses_and_without_the_quota_would_gain():
    """Probes are owed (design.md §10.4): under the defaults a member that commits none is
    lazy, which costs it more than the probes' fees and tx fees it saves, even sparing all its
    compute; one that commits its quota and sends none burns forfeits dearer than what it
    saves. With a quota of 0 the chain could not tell who ought to have probed: not probing
    would save exactly the probes' fees, starts' and commitments' tx fees."""
    for regime in ("late", "launch"):
        economy = Economy(regime=regime)
        for kind in ("sends none", "commits, sends none"):
            outcome = model.non_prober(Params(), economy, kind)
            assert outcome.margin < 0 and outcome.sd == 0, (regime, outcome)
        unowed = Params(validation=replace(ValidationParams(), probe_quota=0))
        outcome = model.non_prober(unowed, economy)
        gas = float(unowed.auth.min_gas_price) * (model.START_TX_GAS + model.COMMIT_TX_GAS)
        assert outcome.margin == pytest.approx(
            model.PROBES_PER_EPOCH * (model.PROBE_TOKENS * economy.price + gas)), regime
    late = model.non_prober(Params(), Economy(), "commits, sends none")
    assert late.margin < -0.005 * Economy().executions * Economy().fee


def test_without_its_forfeit_a_transfer_agent_favouring_an_accomplice_pays():
    """Why an API-key commitment locks a forfeit: without it every dropped variant is a free
    draw, and the pair gains more the more variants the agent tries; at the default forfeit
    it loses even for an accomplice holding nearly a third of the weight."""
    free = Params(inference=replace(InferenceParams(), key_request_forfeit_ppm=0))
    margins = [model.transfer_agent(free, Economy(), "favour-accomplice", tries).margin
               for tries in (2, 16)]
    assert 0 < margins[0] < margins[1]
    heavy = Economy(members=3)  # the accomplice's share w is a third: q = ½
    assert model.transfer_agent(Params(), heavy, "favour-accomplice", 2).margin < 0


def test_the_previous_defaults_let_a_subtle_cheat_a_coalition_and_a_sybil_pay():
    """Why the defaults changed: at a 10 % validator fee share and a 25 % weight cap."""
    old = Params(epochs=EpochsParams(validator_fee_share_ppm=100_000,
                                     max_weight_share_ppm=250_000))
    economy = Economy()
    low = rates.HALF_PRECISION.detection("forge-prefill-int8", 128).interval[0]
    saving = next(c.saving for c in rates.CHEATS if c.name == "forge-prefill-int8")
    assert model.cheating_executor(old, economy, 1.0, low, saving).margin > 0
    assert model.cheating_executor(Params(), economy, 1.0, low, saving).margin < 0
    assert model.coalition_against_truth(old, economy, 0.33, level=0).margin > 0
    assert model.sybil_split(old, economy, 0.3, 2).margin > 0


def test_detection_intervals_are_exact_clopper_pearson():
    assert rates.clopper_pearson(0, 30, 0.95) == (0.0, pytest.approx(0.1157, abs=1e-4))
    low, high = rates.clopper_pearson(6, 6, 0.95)
    assert low == pytest.approx(0.5407, abs=1e-4) and high == 1.0
