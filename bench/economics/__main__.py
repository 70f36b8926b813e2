"""Economic security: does any strategy earn more than honest play under the chain's params?

Two parts, printed as markdown tables (docs/economics.md explains them):

- the exact expected-value model (`model.py`) of each strategy per epoch against the honest
  profit of the same seat: cheating executors for every cheat class of each registry's
  detection table (fp32, the default, and half precision) at f from 1 % to 100 %, at the end
  of each detection rate's 95 % interval that favours the cheater; lazy validators;
  coalitions below a third of the weight; proof-of-compute cheats; free riding, sybil
  splitting and transfer agents. Margins are in units of the deviant's fee income per epoch
  (N × fee), in the late regime (emission ≈ 0, the least deterrence) and at launch (epoch
  0's emission at stake too);
- the simulation (`simulation.py`): the same strategies played on the chain's own handlers
  and block steps, in process, each against an honest run from the same genesis and draws,
  with every coin accounted for at every height.

Progress goes to stderr, the report to stdout. Run ``python -m bench.economics --help``.
"""

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.economics import model, rates
from bench.economics.model import Economy, Outcome, Params
from bench.economics.simulation import Margin, Play, Setup, Simulation, compare
from bench.report import bench_parser, parse_bench_args, progress, publish, section, table

FULL_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
QUICK_FRACTIONS = (0.01, 0.1, 0.5, 1.0)
COALITIONS = (0.1, 0.2, 0.33)


@dataclass(frozen=True)
class Settings:
    fractions: tuple[float, ...]
    longest_only: bool  # each registry's longest measured output only
    setup: Setup
    regimes: tuple[str, ...]

    def lengths(self, registry: rates.Registry) -> tuple[int, ...]:
        return registry.lengths[-1:] if self.longest_only else registry.lengths


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, Path | None]:
    parser = bench_parser(__doc__)
    parser.prog = "python -m bench.economics"
    args = parse_bench_args(parser, "4 values of f, each registry's longest detection rows, "
                            "a 2-epoch simulation of 4 members in the late regime", argv)
    if args.quick:
        return Settings(QUICK_FRACTIONS, True, Setup(epochs=2, members=4), ("late",)), args.out
    return Settings(FULL_FRACTIONS, False,
                    Setup(epochs=2, members=7, inferences_per_block=2), ("launch",)), args.out


def fee_units(outcome: Outcome, economy: Economy) -> float:
    return outcome.margin / (economy.executions * economy.fee)


def cell(outcome: Outcome, economy: Economy) -> str:
    """The margin and its spread in fee units: three decimals, or three significant digits
    of a margin that three decimals would show as +0.000."""
    scale = economy.executions * economy.fee
    margin, sd = fee_units(outcome, economy), outcome.sd / scale
    places = 3 if not margin or abs(margin) >= 0.0005 else \
        2 - math.floor(math.log10(abs(margin)))
    return f"{margin:+.{places}f} ± {sd:.{places}f}"


def region(margins: dict[float, float]) -> str:
    """The fractions where the margin is negative, as a reader wants them."""
    losing = [f for f, m in margins.items() if m < 0]
    if len(losing) == len(margins):
        return "every f"
    if not losing:
        return "none"
    return ", ".join(f"{f:g}" for f in losing)


def inputs_table() -> list[str]:
    rows = []
    for registry in rates.REGISTRIES:
        for cheat in rates.CHEATS:
            for length in registry.lengths:
                found = registry.detection(cheat.name, length)
                low, high = found.interval
                rows.append([registry.name, cheat.name, str(length),
                             f"{found.caught}/{found.n}", f"{found.rate:.3f}",
                             f"[{low:.3f}, {high:.3f}]", f"{cheat.saving:.3f}"])
    sources = "; ".join(f"{r.name}: {r.source}" for r in rates.REGISTRIES)
    return section("Inputs: detection per checked inference and compute saving", table(
        ["registry", "cheat", "max_tokens", "caught", "rate", "95% interval", "saving"], rows,
        3), f"Rows of {sources} (Clopper–Pearson intervals); savings from "
        "bench/economics/rates.py (what each cheat spares of an honest generation).")


def cheat_table(params: Params, settings: Settings, registry: rates.Registry
                ) -> tuple[list[str], list[tuple]]:
    economy = Economy(regime="late")
    rows, paying = [], []
    for cheat in rates.CHEATS:
        for length in settings.lengths(registry):
            found = registry.detection(cheat.name, length)
            low = found.interval[0]
            outcomes = {f: model.cheating_executor(params, economy, f, low, cheat.saving)
                        for f in settings.fractions}
            margins = {f: o.margin for f, o in outcomes.items()}
            if any(m >= 0 for m in margins.values()):
                paying.append(("cheating executor",
                               f"{cheat.name} at {length} tokens, {registry.name}",
                               region({f: -m for f, m in margins.items()})))
            rows.append([f"{cheat.name} @{length}", f"{low:.3f}",
                         *(cell(o, economy) for o in outcomes.values()), region(margins)])
        progress(f"model: cheating executor, {cheat.name}, {registry.name}")
    header = ["cheat @max_tokens", "d (95% low)", *(f"f={f:g}" for f in settings.fractions),
              "unprofitable at"]
    return section(f"Cheating executor (model, late regime, {registry.name} registry)",
                   table(header, rows, 1),
                   "Margin per epoch against honest play ± the standard deviation of the "
                   "cheater's epoch profit, both in units of its fee income per epoch "
                   f"({economy.executions} inferences × {economy.fee} ninfer), at the low end "
                   "of the detection interval; the cheater's reputation is the stationary "
                   "state of its Markov chain."), paying


def shield_table(params: Params, settings: Settings, registry: rates.Registry
                 ) -> tuple[list[str], list[tuple]]:
    economy = Economy(regime="late")
    rows, paying = [], []
    for s in COALITIONS:
        for cheat in rates.CHEATS:
            found = registry.detection(cheat.name, registry.lengths[-1])
            if found.interval[0] == 0:
                continue  # undetected already: the cheat table shows it
            d = model.shielded_detection(found.interval[0], s, params.validation.voters_per_vote)
            margins = {f: model.cheating_executor(params, economy, f, d, cheat.saving).margin
                       for f in settings.fractions}
            worst = max(margins.values()) / (economy.executions * economy.fee)
            if worst >= 0:
                paying.append(("coalition shields its cheater",
                               f"s={s:g}, {cheat.name} at {found.max_tokens} tokens, "
                               f"{registry.name}",
                               region({f: -m for f, m in margins.items()})))
            rows.append([f"s={s:g}", cheat.name, f"{d:.3f}", f"{worst:+.3f}", region(margins)])
        progress(f"model: coalition of {s:g} shielding its cheater, {registry.name}")
    return section(f"Coalition shielding its own cheater (model, late regime, {registry.name} "
                   f"registry, {registry.lengths[-1]} tokens)", table(
        ["coalition", "cheat", "effective d", "best margin over f", "unprofitable at"], rows, 2),
        "A coalition of weight share s passes its member's cheats and holds the vote seats "
        "the draw gives it: d × (1 − s) × (1 − P(2 of 3 seats)), its members passing their "
        "turns to propose the block a vote draws from when its value gives the coalition "
        "too few; the margin at the f that suits the cheater best."), paying


def other_outcomes(params: Params, economy: Economy) -> list[Outcome]:
    found = [model.lazy_validator(params, economy, kind, g)
             for kind in ("skip", "blind-pass", "copy", "withhold-scores") for g in (0.1, 1.0)]
    found.append(model.vote_follower(params, economy))
    found += [model.coalition_against_truth(params, economy, s, level)
              for level in (None, 0) for s in COALITIONS]
    found += [model.fabricated_nonces(params, economy, phi) for phi in (0.01, 0.1, 0.5)]
    found += [model.poc_screen(params, economy, f"{name} ({gain:.2f}×)", gain)
              for name, gain in rates.POC_SCREENS.items()]
    found += [model.free_rider(params, economy, kind, level)
              for level in (None, 0) for kind in ("silent", "refuse")]
    found += [model.free_rider(params, economy, "silent", level, served=0.5)
              for level in (None, 0)]
    found += [model.non_prober(params, economy, kind)
              for kind in ("sends none", "commits, sends none")]
    found += [model.sybil_split(params, economy, share, 2) for share in (0.1, 0.2, 0.3)]
    found += [model.transfer_agent(params, economy, kind)
              for kind in ("drop", "withhold-start", "favour-self", "skip-to-accomplice")]
    found += [model.transfer_agent(params, economy, "favour-accomplice", tries)
              for tries in (2, 16)]
    return found


def others_table(params: Params) -> tuple[list[str], list[tuple]]:
    late, launch = Economy(regime="late"), Economy(regime="launch")
    rows, paying = [], []
    for a, b in zip(other_outcomes(params, late), other_outcomes(params, launch), strict=True):
        # A deviation the chain refuses or makes impossible (a copy of a sealed report),
        # or one the reference software already takes, leaves the deviant exactly where
        # honest play does.
        inert = a.margin == b.margin == a.sd == b.sd == 0
        pays = not inert and (a.margin >= 0 or b.margin >= 0)
        if pays:
            paying.append((a.strategy, a.setting, "—"))
        rows.append([a.strategy, a.setting, cell(a, late), cell(b, launch),
                     "no gain" if inert else "PAYS" if pays else "loses"])
    progress("model: the other strategies")
    return section("Other strategies (model)", table(
        ["strategy", "setting", "margin, late", "margin, launch", "verdict"], rows, 2),
        "Margin per epoch against honest play ± its standard deviation, in units of the "
        "deviant's fee income per epoch; launch adds epoch 0's emission to what a forfeit "
        "costs."), paying


def simulation_plays() -> list[Play]:
    return [
        Play("cheat skip-layers f=0.25", (0,), cheat="skip-layers", f=0.25),
        Play("cheat wrong-seed f=1", (0,), cheat="wrong-seed", f=1.0),
        Play("cheat int8 f=1", (0,), cheat="int8", f=1.0),
        Play("lazy: skip half the checks", (0,), lazy="skip", g=0.5),
        Play("lazy: pass without computing", (0,), lazy="blind-pass", g=1.0),
        Play("lazy: copy others' reports", (0,), lazy="copy", g=1.0),
        Play("coalition votes against the truth", (0,), coalition="against"),
        Play("coalition shields its cheater", (0,), coalition="shield", cheat="skip-layers",
             f=0.5),
        Play("free rider, silent", (0,), serving="silent"),
        Play("free rider, refusing", (0,), serving="refuse"),
        Play("transfer agent drops requests", (0,), agent="drop"),
        Play("transfer agent withholds starts", (0,), agent="withhold-start"),
        Play("transfer agents favour each other", (0, 1), agent="favour-accomplice"),
    ]


def with_coalition(play: Play, members: int) -> Play:
    """Coalitions hold just under a third of the members' weight."""
    if not play.coalition:
        return play
    return replace(play, deviants=tuple(range(max(1, (members - 1) // 3))))


def simulate(setup: Setup, regime: str) -> list[Margin]:
    setup = replace(setup, regime=regime)
    progress(f"simulation ({regime}): honest baseline")
    baseline = Simulation(setup, Play()).run()
    found = []
    for play in simulation_plays():
        progress(f"simulation ({regime}): {play.name}")
        if play.agent == "favour-accomplice":
            # Only an API-key request's id is its agent's to vary: the play and its own
            # baseline commit every request on chain first.
            found.append(compare(replace(setup, key_requests=True), play))
            continue
        found.append(compare(setup, with_coalition(play, setup.members), baseline))
    return found


def simulation_table(margins: list[Margin], regime: str, setup: Setup) -> list[str]:
    rows = [[m.play.name, f"{m.honest:,.0f}", f"{m.margin:+,.0f}", f"{m.per_epoch_sd:,.0f}",
             f"{m.margin / abs(m.honest):+.2%}" if m.honest else "—",
             str(m.run.invalidated), str(m.run.lazy_epochs), str(m.run.invalid_epochs),
             "{:,} ({:,})".format(*m.reputation), str(m.heights)] for m in margins]
    return section(f"Simulation on the chain's handlers ({regime})", table(
        ["play", "honest profit", "margin", "sd per epoch", "margin / honest", "invalidated",
         "lazy epochs", "INVALID epochs", "reputation at the end (honest)", "heights audited"],
        rows, 1),
        f"{setup.members} members, {setup.epochs} epochs of {setup.epoch_length} blocks, "
        f"{setup.inferences_per_block} inferences a block; profits in ninfer over the run "
        "(deviants' seats summed), against the honest run of the same genesis and draws; "
        "reputation in ppm, the deviants' lowest and the same seats' in the honest run; "
        "coins were conserved at every audited height.")


def main(argv: Sequence[str] | None = None) -> None:
    settings, out = parse_args(argv)
    logging.disable(logging.WARNING)  # the chain logs every forfeit; the tables say it
    started = time.monotonic()
    params = Params()
    lines = ["# Economic security under the default parameters", ""]
    lines += inputs_table() + [""]
    found = []
    for registry in rates.REGISTRIES:
        cheats, paying = cheat_table(params, settings, registry)
        shields, shield_paying = shield_table(params, settings, registry)
        lines += cheats + [""] + shields + [""]
        found += paying + shield_paying
    others, others_paying = others_table(params)
    lines += others + [""]
    for regime in settings.regimes:
        lines += simulation_table(simulate(settings.setup, regime), regime,
                                  settings.setup) + [""]
    found += others_paying
    lines += section("Strategies that pay (model)", table(
        ["strategy", "setting", "pays at f"], [list(p) for p in found], 2) if found
        else ["none"], "Every other strategy earns strictly less than honest play, or "
        "exactly as much where the chain leaves it nothing to deviate with (no gain); a cheat "
        f"row pays only under the registry it names ({rates.DEFAULT_REGISTRY.name} is the "
        "default genesis's).")
    lines += ["", f"Ran in {time.monotonic() - started:.0f} s."]
    publish(lines, out)


if __name__ == "__main__":
    main()
