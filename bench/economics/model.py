"""The exact expected-value model: each strategy's profit per epoch against honest play.

Every figure comes from the chain's own parameter objects (defaults unless overridden) and
the measured rates of `rates.py`; the economy (members, traffic, prices, what compute costs)
is an explicit `Economy`. A strategy's outcome is a set of atoms (probability, profit) for one
epoch of the deviant, so its mean and variance are exact sums; where the chain's rules are
only bounded (noted at each), the bound is the one that favours the deviant, so a negative
margin is a proof and a positive one may overstate the gain.

Profit is in ninfer per epoch: reward coins + work coins (fees earned executing, less the
validator fee share paid, plus shares earned validating) − the compute spent, priced at
``cost_share`` of the fee it earns. Two regimes bracket the emission schedule: ``launch``
(epoch 0's emission, split by weight) and ``late`` (emission decayed to nothing, so only
work coins are at stake: the regime where forfeiting an epoch deters least).
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from apinode.config import ApiNodeConfig
from bench.economics import rates
from chain.auth.params import AuthParams
from chain.epochs.params import EpochsParams
from chain.epochs.settlement import emission
from chain.inference.key_commitments import probe_forfeit
from chain.inference.params import InferenceParams
from chain.scales import PPM
from chain.validation.params import ValidationParams
from chain.validation.sampling import check_probability_ppm, expected_checks_ppm
from chain.validation.served_draws import unserved_draws

START_TX_GAS = 150_000  # a MsgStartInference tx's gas limit: 1.3 × the ~107,000 it uses, rounded up
# A MsgNoticePasses tx of one pass: 1.3 × the ~85,400 gas it uses, rounded up (one of many
# passes batched costs less).
NOTICE_TX_GAS = 111_000
# A MsgOpenScores tx's gas limit: 1.3 × the ~128,000 one used opening a 3-token canary's
# scores and closing its vote (in process; longer outputs add their bytes).
OPEN_SCORES_TX_GAS = 170_000
POC_TXS_PER_MEMBER = 3  # commit, claim and one PoC submission per identity and epoch
# A MsgCommitKeyRequests tx of one request: 1.3 × the ~84,000 gas one probe's commitment
# uses, rounded up (a request committed beside others costs less).
COMMIT_TX_GAS = 110_000
# What an API node's probes cost (docs/design.md §10.4): apinode.toml's defaults,
# `probes_per_epoch` per probed model (one here; the worker sends at least the chain's
# quota) of at most `probe_max_tokens`, after a prompt of about 48 tokens in the default
# model's chat template.
PROBES_PER_EPOCH = ApiNodeConfig.probes_per_epoch
PROBE_TOKENS = 48 + ApiNodeConfig.probe_max_tokens


@dataclass(frozen=True)
class Params:
    """The chain parameters the strategies face: defaults unless a run overrides them."""

    validation: ValidationParams = field(default_factory=ValidationParams)
    epochs: EpochsParams = field(default_factory=EpochsParams)
    inference: InferenceParams = field(default_factory=InferenceParams)
    auth: AuthParams = field(default_factory=AuthParams)

    def checks(self, level: int) -> float:
        """Checks an inference of an executor ``level`` reputation steps up (0 = newcomer)
        is owed in all, on average (chain/validation/sampling.py)."""
        v = self.validation
        reputation = min(PPM, level * v.reputation_step_ppm)
        p_ppm = check_probability_ppm(reputation, v.p_min_ppm, v.p_max_ppm)
        return expected_checks_ppm(p_ppm, v.max_expected_checks_ppm) / PPM

    def assigned(self, level: int, members: int) -> float:
        """The chance that one of ``members`` equal members owes a check of another's
        inference: its equal share of the checks, at most 1."""
        return min(1.0, self.checks(level) / (members - 1))

    def checked(self, level: int, members: int) -> float:
        """The chance that an inference is checked at all, among ``members`` equal members."""
        return 1 - (1 - self.assigned(level, members)) ** (members - 1)

    @property
    def levels(self) -> int:
        return self.validation.epochs_to_max

    @property
    def fee_share(self) -> float:
        return self.epochs.validator_fee_share_ppm / PPM


@dataclass(frozen=True)
class Economy:
    """The network the strategies play in: equal members unless a coalition is named."""

    members: int = 10
    executions: int = 200  # inferences the deviant executes per epoch (its draw share)
    tokens: int = 200  # prompt + output tokens per inference
    price: int = 100  # ninfer per token (the default model's registry price)
    cost_share: float = 0.9  # compute cost of an inference over its fee
    score_over_generate: float = rates.SCORE_OVER_GENERATE
    regime: str = "late"  # "launch": epoch 0's emission; "late": emission ≈ 0

    @property
    def fee(self) -> int:
        return self.tokens * self.price

    @property
    def weight_share(self) -> float:
        return 1 / self.members


@dataclass(frozen=True)
class Outcome:
    """A strategy's epoch: exact mean and standard deviation of the deviant's profit, and
    the honest profit in the same seat."""

    strategy: str
    setting: str
    mean: float
    sd: float
    honest: float

    @property
    def margin(self) -> float:
        return self.mean - self.honest


def reward_share(params: Params, economy: Economy, share: float) -> float:
    if economy.regime == "late":
        return 0.0
    return emission(params.epochs, 0) * share


def binomial_pmf(n: int, p: float) -> np.ndarray:
    """P(X = k), k = 0..n, for X ~ Bin(n, p), from log-factorials (exact to rounding)."""
    k = np.arange(n + 1)
    if p <= 0.0:
        return (k == 0).astype(float)
    if p >= 1.0:
        return (k == n).astype(float)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    log_pmf = log_fact[n] - log_fact[k] - log_fact[n - k] + k * math.log(p) + \
        (n - k) * math.log1p(-p)
    return np.exp(log_pmf)


def moments(atoms: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """(mean, sd) of a discrete distribution given as (probability, value) atoms."""
    total = mean = square = 0.0
    for probability, value in atoms:
        total += probability
        mean += probability * value
        square += probability * value * value
    mean /= total
    return mean, math.sqrt(max(0.0, square / total - mean * mean))


def honest_profit(params: Params, economy: Economy, share: float | None = None) -> float:
    """An honest member at full reputation: its reward share, its fees less the validator
    share of its checked inferences, the fee shares its own checks earn, less compute."""
    share = economy.weight_share if share is None else share
    n, fee, kappa = economy.executions, economy.fee, economy.cost_share
    p = params.checked(params.levels, economy.members)
    checks = params.checks(params.levels) * n  # equal members: as many owed as received
    return reward_share(params, economy, share) + n * fee * (1 - kappa - params.fee_share * p) \
        + checks * fee * (params.fee_share - economy.score_over_generate * kappa)


# --- cheating executor -------------------------------------------------------------------


def _invalid_rule(k: np.ndarray, passed: np.ndarray, v: ValidationParams) -> np.ndarray:
    """The rate rule of INVALID at the epoch's end (the consecutive rule and the rule holding
    earlier in the epoch only add to it: leaving them out favours the cheater)."""
    return (k >= v.invalid_min_count) & (k * PPM >= (k + passed) * v.invalid_rate_ppm)


def _binomial_rows(sizes: np.ndarray, p: float, width: int) -> np.ndarray:
    """Row i: the pmf of Bin(sizes[i], p) over 0..width-1 (zero past sizes[i])."""
    k = np.arange(width)[None, :]
    n = sizes[:, None]
    if p <= 0.0:
        return (k == 0) * np.ones_like(n, dtype=float)
    if p >= 1.0:
        return (k == n).astype(float)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, width + 1)))])
    valid = k <= n
    safe = np.where(valid, n - k, 0)
    log_pmf = log_fact[n] - log_fact[np.minimum(k, width)] - log_fact[safe] + \
        k * math.log(p) + safe * math.log1p(-p)
    return np.where(valid, np.exp(log_pmf), 0.0)


def _cheater_level(params: Params, economy: Economy, level: int, f: float, d: float,
                   saving: float) -> tuple[float, np.ndarray, np.ndarray]:
    """One epoch of a cheater at reputation ``level``: P(no invalidation), and the joint
    probabilities and profits over (invalidated k, checked and passed z)."""
    n, fee, kappa = economy.executions, economy.fee, economy.cost_share
    p = params.checked(level, economy.members)
    caught = p * f * d
    cost = kappa * fee * n * (1 - f * saving)
    # What it earns validating does not depend on its own reputation: it checks others.
    keep = reward_share(params, economy, economy.weight_share) + params.checks(params.levels) * \
        n * fee * (params.fee_share - economy.score_over_generate * kappa)
    pk = binomial_pmf(n, caught)
    pass_given_left = 0.0 if caught >= 1 else p * (1 - f * d) / (1 - caught)
    k = np.arange(n + 1)
    joint = pk[:, None] * _binomial_rows(n - k, pass_given_left, n + 1)
    passed = np.arange(n + 1)[None, :]
    kk = k[:, None]
    invalid = _invalid_rule(kk, passed, params.validation)
    # INVALID: nothing paid, and its compute counted as 0 (a bound in the cheater's favour).
    profit = np.where(invalid, 0.0,
                      keep + fee * (n - kk) - params.fee_share * fee * passed - cost)
    return float(pk[0]), joint, profit


def cheating_executor(params: Params, economy: Economy, f: float, d: float,
                      saving: float, setting: str = "") -> Outcome:
    """A cheater that serves a cheaper model on a share ``f`` of its inferences, forever.

    Its reputation is a Markov chain: an epoch with an invalidation sends it to 0 (p = 1
    next epoch), a clean one up one step (p falls to p_min after ``epochs_to_max``). Its
    long-run epoch is the chain's stationary mixture of the levels' epochs."""
    top = params.levels
    stay, joints, profits = zip(*(_cheater_level(params, economy, level, f, d, saving)
                                  for level in range(top + 1)), strict=True)
    weights = np.zeros(top + 1)
    if stay[top] >= 1.0:  # never caught: it keeps full reputation
        weights[top] = 1.0
    else:
        weights[0] = 1.0
        for level in range(1, top + 1):
            weights[level] = weights[level - 1] * stay[level - 1]
        weights[top] /= 1 - stay[top]
        weights /= weights.sum()
    probability = np.concatenate([w * j.ravel() for w, j in zip(weights, joints, strict=True)])
    value = np.concatenate([v.ravel() for v in profits])
    mean = float(probability @ value / probability.sum())
    sd = math.sqrt(max(0.0, float(probability @ (value - mean) ** 2 / probability.sum())))
    return Outcome("cheating executor", setting or f"f={f:g} d={d:.3f}", mean, sd,
                   honest_profit(params, economy))


def shielded_detection(d: float, coalition: float, voters: int = 3) -> float:
    """The detection a coalition of weight ``coalition`` leaves its own cheater: a check
    counts only when an outside member makes it (one checker, drawn by weight: the bound
    for p ≪ 1) and the vote it opens is not flipped by coalition seats."""
    return d * (1 - coalition) * (1 - seats_to_flip(coalition, voters))


def seats_to_flip(coalition: float, voters: int = 3) -> float:
    """P(the coalition holds a majority of a vote's seats): many members of small weight,
    seats drawn by weight (docs/design.md §6.5: 3s² − 2s³ for three voters) from the value
    of the window's first opening height. Bound in its favour: consensus power follows the
    weight (§7.4), so its members propose that block with chance ``coalition``, and one that
    sees the value give the coalition too few seats lets its turn pass (§2.7) to the next
    round's proposer, again its own with chance ``coalition``: p / (1 − s(1 − p)), as if
    passing turns cost it nothing."""
    need = voters // 2 + 1
    fair = sum(math.comb(voters, j) * coalition ** j * (1 - coalition) ** (voters - j)
               for j in range(need, voters + 1))
    return fair / (1 - coalition * (1 - fair))


# --- lazy validators -----------------------------------------------------------------------


def _owed_checks(params: Params, economy: Economy) -> np.ndarray:
    """Distribution of the checks a member owes in an epoch: every other member's
    executions, each assigned to it with probability p × its share of the others' weight."""
    others = economy.executions * (economy.members - 1)
    q = params.assigned(params.levels, economy.members)
    return binomial_pmf(others, q)


def lazy_validator(params: Params, economy: Economy, kind: str, g: float) -> Outcome:
    """A member that does ``g`` of its owed checks the lazy way ``kind``:

    - ``skip``: not at all. Judging at reveal recomputes its assignment: one miss is lazy.
    - ``blind-pass``: reports pass without computing; the canaries among the inferences it
      owes (each executor's share canary_rate, from its seed, assigned by the same rule and
      not told apart before the checks are due) catch it.
    - ``copy``: copies another member's verdict on the same inference instead of
      re-scoring it. It can copy only a verdict it sees before it must seal its own, and
      every report is sealed until the window's sealing is over (docs/design.md §6.3), so
      it never sees one: the chance of finding a verdict to copy is 0, it re-scores every
      check it owes, and its epoch is the honest seat's.
    - ``withhold-scores``: checks honestly but, of the canaries it caught, leaves the share
      ``g`` of its scores unopened once they are claimed (saving each opening's tx fee and
      leaving the real artifact to the voters' re-scores): each is a vote missed, lazy.
    """
    if kind == "copy":
        honest = honest_profit(params, economy)
        return Outcome("lazy validator", f"{kind} g={g:g}", honest, 0.0, honest)
    n, fee, kappa = economy.executions, economy.fee, economy.cost_share
    check_cost = economy.score_over_generate * kappa * fee
    share_earned = params.fee_share * fee
    base = reward_share(params, economy, economy.weight_share) + \
        n * fee * (1 - params.fee_share * params.checked(params.levels, economy.members)) - \
        kappa * n * fee
    owed = _owed_checks(params, economy)
    canary = params.validation.canary_rate_ppm / PPM
    q = params.assigned(params.levels, economy.members)
    others = n * (economy.members - 1)
    atoms = []
    for x in np.nonzero(owed > 1e-12)[0]:
        if kind == "skip":
            clean = (1 - g) ** x
            done = (1 - g) * x
            atoms.append((owed[x] * clean, base + x * (share_earned - check_cost)))
            if clean < 1:
                done_if_caught = (done - x * clean) / (1 - clean)
                atoms.append((owed[x] * (1 - clean), -kappa * n * fee
                              - done_if_caught * check_cost))
        elif kind == "withhold-scores":
            opening_fee = OPEN_SCORES_TX_GAS * float(params.auth.min_gas_price)
            canaries = binomial_pmf(int(round(others * canary)), q)
            for y in np.nonzero(canaries > 1e-12)[0]:
                clean = (1 - g) ** y
                saved = g * y * opening_fee
                atoms.append((owed[x] * canaries[y] * clean,
                              base + x * (share_earned - check_cost) + saved))
                atoms.append((owed[x] * canaries[y] * (1 - clean),
                              -kappa * n * fee - x * check_cost + saved))
        elif kind == "blind-pass":
            canaries = binomial_pmf(int(round(others * canary)), q)
            for y in np.nonzero(canaries > 1e-12)[0]:
                clean = (1 - g) ** y
                spent = (1 - g) * (x + y) * check_cost
                atoms.append((owed[x] * canaries[y] * clean, base + x * share_earned - spent))
                atoms.append((owed[x] * canaries[y] * (1 - clean), -kappa * n * fee - spent))
        else:
            raise ValueError(f"unknown lazy kind {kind!r}")
    mean, sd = moments(atoms)
    return Outcome("lazy validator", f"{kind} g={g:g}", mean, sd,
                   honest_profit(params, economy))


def vote_follower(params: Params, economy: Economy) -> Outcome:
    """A member that casts its ballots without re-scoring: a drawn voter sees the window's
    reports, opened before the vote one of them opened (docs/design.md §6.5), and a
    canary's claim, which is public; it would pass a canary's fresh vote unread (a canary's
    real artifact is its honest output, §6.9) and follow the window's reports in any other.

    Among honest members the only votes are checked canaries' fresh votes, and each closes
    on the scores its checkers committed before the claim (every honest check fails the
    shifted artifact and opens its scores, which pass the real one), before a voter owes a
    ballot: the honest voter waits for them and re-scores nothing, so there is no re-score
    for the follower to save. It earns exactly the honest income."""
    honest = honest_profit(params, economy)
    return Outcome("lazy validator", "follow in votes", honest, 0.0, honest)


# --- coalitions ----------------------------------------------------------------------------


def coalition_against_truth(params: Params, economy: Economy, s: float,
                            level: int | None = None) -> Outcome:
    """A coalition of weight ``s`` fails every honest output it is assigned, without
    re-scoring it, and votes "fail" in every vote it sits in; per member of it.

    Bound in its favour: every victim is INVALID from the epoch's first block, so all its
    draws go to the others (the coalition takes share s of them at its own fee margin). Its
    price: it earns no fee share on those checks, and every vote it loses (1 − P(2 of 3
    seats) of them) costs each of its reporters a reputation step and makes its epoch
    unclean, so its members fall to reputation 0 (``level``, else the fall from full
    reputation) and pay the fee share at p = 1 on their own executions. What it saves is the
    re-score of each check. The victims' rewards are withheld, not paid to anyone."""
    n, fee, kappa = economy.executions, economy.fee, economy.cost_share
    flip = seats_to_flip(s, params.validation.voters_per_vote)
    start = params.levels if level is None else level
    p_own, p_before = params.checked(0, economy.members), params.checked(start, economy.members)
    checks = params.checks(params.levels) * n
    taken = (1 - s) * n  # each victim's draws, shared out by weight
    served = n + taken
    mean = reward_share(params, economy, economy.weight_share) + \
        served * fee * (1 - kappa - params.fee_share * p_own)
    honest = reward_share(params, economy, economy.weight_share) + \
        n * fee * (1 - kappa - params.fee_share * p_before) + \
        checks * fee * (params.fee_share - economy.score_over_generate * kappa)
    setting = f"s={s:g} (flips {flip:.1%})" + (f", from reputation {start}" if level is not None
                                                else "")
    return Outcome("coalition votes against the truth", setting, mean, 0.0, honest)


# --- proof of compute ------------------------------------------------------------------


def fabricated_nonces(params: Params, economy: Economy, phi: float) -> Outcome:
    """Claims a share ``phi`` of its nonces without computing them: weight × 1/(1 − phi)
    if every one of the ``poc_sample_size`` nonces the checkers re-compute is real (each
    fabricated one fails its check), weight 0 for the next epoch otherwise. Bound in its
    favour: it proposes the block whose value picks the sample with its share of the
    consensus power (its inflated weight's), and lets that turn pass when the sample holds
    a fabricated nonce (docs/design.md §2.7), the next round's proposer again itself with
    that chance: q / (1 − w(1 − q)) for the fair chance q, as if passing cost nothing."""
    sample = params.epochs.poc_sample_size
    fair = (1 - phi) ** sample
    power = min(1.0, economy.weight_share / (1 - phi))
    survive = fair / (1 - power * (1 - fair))
    honest = honest_profit(params, economy)
    inflated = honest / (1 - phi)  # reward and draws both follow weight
    mean = survive * inflated
    sd = math.sqrt(survive * (1 - survive)) * inflated
    return Outcome("PoC: claim uncomputed nonces", f"phi={phi:g}", mean, sd, honest)


def poc_screen(params: Params, economy: Economy, setting: str, gain: float) -> Outcome:
    """A prover whose search yields `gain` times the accepted nonces per unit of compute of
    the reference prover's (mlnode/poc/nonces.py), against members that prove with it. Every
    nonce it claims is genuine, so no check refuses it; its weight, and with it its reward
    and draws, scale by `gain`."""
    honest = honest_profit(params, economy)
    if gain == 1.0:
        return Outcome("PoC: screening", setting, honest, 0.0, honest)
    others = economy.members - 1
    share = gain / (others + gain)
    gained = replace(economy, executions=int(round(economy.executions * share
                                                   * economy.members)))
    return Outcome("PoC: screening", setting, honest_profit(params, gained, share), 0.0,
                   honest)


# --- free riding, sybils, transfer agents ---------------------------------------------


def free_rider(params: Params, economy: Economy, kind: str, level: int | None = None,
               served: float = 0.0) -> Outcome:
    """Keeps its weight (PoC done) but serves only ``served`` of its draws. ``silent``: the
    rest are passed over without a refusal; passes beyond ``passed_over_allowance_ppm`` of
    the draws are unserved and count as misses (chain/validation/served_draws.py).
    ``refuse``: the rest carry its signed refusal, a miss each. The reward is scaled by
    finished / (finished + misses + unserved), and the epoch's reputation step by the share
    of its draws served (none at all when it counts misses), so the seat climbs ``served``
    of a step at most.

    At ``level`` (a newcomer's climb, serving at a loss) the free rider avoids that loss
    now, but what it did not climb it must climb later, serving at this level's loss then,
    and it reaches full reputation that much later: over any stay past the climb, its path
    is the honest one delayed by (1 − climbed) of an epoch. So the deviant's epoch is
    credited with the level's work still ahead of it and the honest seat's with the epochs
    at full reputation it gains (exact for equal epochs; the step a miss costs besides is
    left out, in the deviant's favour). At full reputation there is no climb left."""
    n, fee, kappa = economy.executions, economy.fee, economy.cost_share
    start = params.levels if level is None else level
    checks = params.checks(params.levels) * n
    validation = checks * fee * (params.fee_share - economy.score_over_generate * kappa)
    reward = reward_share(params, economy, economy.weight_share)

    def fees(at: int) -> float:
        return n * fee * (1 - kappa - params.fee_share * params.checked(at, economy.members))

    skipped = round(n * (1 - served))
    if kind == "silent":
        misses = unserved_draws(finished=n - skipped, misses=0, passed_over=skipped,
                                allowance_ppm=params.validation.passed_over_allowance_ppm)
    else:
        misses = skipped
    finished = n - skipped
    kept = reward * finished / (finished + misses) if finished + misses else reward
    climbing = start < params.levels
    behind = (1 - (served if not misses else 0.0)) if climbing else 0.0
    honest = reward + fees(start) + validation + behind * fees(params.levels)
    deviant = kept + (served + behind) * fees(start) + validation
    setting = kind + (f", serving {served:.0%}" if served else "") + \
        (f", at reputation level {start}" if level is not None else "")
    return Outcome("free rider", setting, deviant, 0.0, honest)


def non_prober(params: Params, economy: Economy, kind: str = "sends none") -> Outcome:
    """Sends none of the probes it owes (docs/design.md §10.4). Honest probing costs each
    probe's tokens, its start's and its commitment's tx fees (an API-key request never draws
    its own agent, so none of the fee comes back; the transfer agent's fee goes from the
    member to itself either way).

    - ``sends none``: commits none. Below the chain's ``probe_quota`` the epoch's judging
      makes it lazy: no reward, its work coins burned. Bound in its favour: lazy anyway, it
      also spares every inference's and check's compute, and its lost reputation is not
      counted; its profit is the probes' cost saved. With a quota of 0 it is paid as the
      honest seat and saves the same.
    - ``commits, sends none``: commits its quota of probes and starts none, so judging counts
      them: it saves their tokens and starts' tx fees, and each commitment's forfeit, at
      least ``probe_forfeit_tokens`` at the price plus ``transfer_agent_fee``, burns."""
    quota = params.validation.probe_quota
    probes = max(PROBES_PER_EPOCH, quota)
    gas_price = float(params.auth.min_gas_price)
    served = PROBE_TOKENS * economy.price + START_TX_GAS * gas_price
    cost = probes * (served + COMMIT_TX_GAS * gas_price)
    honest = honest_profit(params, economy)
    if kind == "sends none":
        mean = cost if quota else honest + cost
    elif kind == "commits, sends none":
        mean = honest + probes * served - quota * probe_forfeit(params.inference, economy.price)
    else:
        raise ValueError(f"unknown probing kind {kind!r}")
    return Outcome("free rider", kind, mean, 0.0, honest)


def sybil_split(params: Params, economy: Economy, compute_share: float, parts: int) -> Outcome:
    """One participant with ``compute_share`` of all accepted nonces registers as ``parts``
    identities. Weight is capped at max_weight_share_ppm of all accepted nonces per
    identity, so a split lifts a capped participant; each identity pays its own commit,
    claim and PoC txs and re-computes every other member's PoC sample."""
    cap = params.epochs.max_weight_share_ppm / PPM
    total_executions = economy.executions * economy.members

    def seat(share: float, identities: int) -> float:
        weight = min(share / identities, cap) * identities
        others = 1 - share
        fraction = weight / (weight + others)
        served = replace(economy, executions=int(round(total_executions * fraction)))
        return honest_profit(params, served, fraction)

    tx_fee = START_TX_GAS * float(params.auth.min_gas_price) * POC_TXS_PER_MEMBER
    mean = seat(compute_share, parts) - (parts - 1) * tx_fee
    return Outcome("sybil split", f"{compute_share:.0%} of compute in {parts}", mean, 0.0,
                   seat(compute_share, 1))


def transfer_agent(params: Params, economy: Economy, kind: str, tries: int = 2) -> Outcome:
    """A transfer agent pays each start's tx fee and is paid ``transfer_agent_fee`` by the
    developer when the inference it started is charged; what it does changes that, its own
    executions of its own requests (share w of them) and nothing else.

    - ``drop``: drops every request: loses its executions of them and their fees.
    - ``withhold-start``: never sends the start; the executor's relay (MsgRelayStart) starts
      it, pays that tx's fee and is paid the agent's fee instead.
    - ``favour-self``: re-stamps each API-key request (its own timestamp; the nonce follows)
      hoping the draw names it: an API-key start never names its own agent
      (start_rules.executor_order), so its income is the honest one, less nothing.
    - ``favour-accomplice``: commits up to ``tries`` variants of each API-key request
      (docs/design.md §3.3), one after another, and starts the first whose draw names its
      accomplice, a member of the same weight w, first (q = w / (1 − w) of the draws that
      leave the agent out), or the last; each variant it drops burns its forfeit F,
      ``key_request_forfeit_ppm`` of the escrow. Each drop buys one more draw, which gives
      the pair the fee margin M with chance q: the D = (1 − q)(1 − (1 − q)^(tries − 1)) / q
      drops a request takes on average add D (qM − F), a loss at every ``tries`` once
      F > qM. Bound in its favour: the escrow is the least a start escrows, its fee and the
      agent's fee (a request asking for no more tokens than it gets).
    - ``skip-to-accomplice``: tries to pass the picks before its accomplice whenever the
      draw puts it among the first ``max_attempts`` picks (the share min(1, max_attempts ×
      q) − q of the requests among equal members), as the agent may pass a pick that is
      silent or unreachable. Each pass needs a notice on chain that the pick may claim
      (docs/design.md §3.3), and a live pick claims: the request goes to it after all, and
      the agent has paid the notice's tx (its bond comes back with the start; dropping the
      request instead burns the bond and loses the agent's fee)."""
    n, fee, kappa = economy.executions, economy.fee, economy.cost_share
    requests = n  # a TA handling as many requests as it executes
    w = economy.weight_share
    margin_each = fee * (1 - kappa - params.fee_share *
                         params.checked(params.levels, economy.members))
    start_fee = START_TX_GAS * float(params.auth.min_gas_price)
    agent_margin = params.inference.transfer_agent_fee - start_fee
    honest = honest_profit(params, economy) + requests * agent_margin
    if kind == "drop":
        mean = honest - requests * (w * margin_each + agent_margin)
    elif kind == "withhold-start":
        mean = honest - requests * (1 - w) * agent_margin
    elif kind == "favour-self":
        mean = honest
    elif kind == "favour-accomplice":
        q = w / (1 - w)
        forfeit = params.inference.key_request_forfeit_ppm / PPM * \
            (fee + params.inference.transfer_agent_fee)
        drops = (1 - q) * (1 - (1 - q) ** (tries - 1)) / q
        mean = honest + requests * drops * (q * margin_each - forfeit)
        kind = f"{kind}, {tries} tries"
    elif kind == "skip-to-accomplice":
        q = w / (1 - w)
        tried = min(1.0, params.inference.max_attempts * q) - q
        notice_fee = NOTICE_TX_GAS * float(params.auth.min_gas_price)
        mean = honest - requests * tried * notice_fee
    else:
        raise ValueError(f"unknown transfer agent kind {kind!r}")
    return Outcome("transfer agent", kind, mean, 0.0, honest)

