"""One recipe against another over several training seeds: is a KID difference larger than what a new seed moves?

A run's KID std only covers subsets of that run's samples; a second training seed of the same recipe moves the
KID by more (issue 17: 8-23 x1e-3 in Lite1, against stds of 2-14). So a recipe's run-to-run variance is the larger
of its variance over seeds and its mean within-run KID variance (the only one there is with one seed), and a
verdict per class compares the means over seeds by the std of their difference, sqrt(v_ref/n_ref + v_cand/n_cand):
"worse" when the candidate's mean is above the reference's by more than that, "better" when below by more, else
"level". With one seed each this is issue 17's rule (a difference larger than the two KID stds combined). Seeds
both recipes ran are also paired (seed s of one against seed s of the other) and the candidate's wins counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class SeedScores:
    """One recipe's KID of one class, per training seed: {seed: (kid, within-run kid std)}."""
    by_seed: Mapping[int, tuple[float, float]]

    @property
    def mean(self) -> float:
        return float(np.mean([k for k, _ in self.by_seed.values()]))

    @property
    def seed_sd(self) -> float:
        """Sample std over seeds (nan with one seed)."""
        kids = [k for k, _ in self.by_seed.values()]
        return float(np.std(kids, ddof=1)) if len(kids) > 1 else math.nan

    @property
    def within_std(self) -> float:
        return float(np.mean([s for _, s in self.by_seed.values()]))

    @property
    def run_variance(self) -> float:
        """What one run of the recipe moves by: over seeds, but never below the within-run KID variance."""
        seed_var = self.seed_sd ** 2
        return self.within_std ** 2 if math.isnan(seed_var) else max(seed_var, self.within_std ** 2)


@dataclass(frozen=True)
class SeedVerdict:
    reference_mean: float
    candidate_mean: float
    difference: float  # candidate - reference (lower KID is better)
    reference_seed_sd: float  # std over the reference's seeds (nan with one seed)
    candidate_seed_sd: float
    difference_sd: float  # the yardstick: std of the difference of the two means
    verdict: str  # "worse" | "level" | "better"
    paired_seeds: int
    candidate_wins: int  # of the paired seeds, those where the candidate's KID is lower


def compare_over_seeds(reference: SeedScores, candidate: SeedScores) -> SeedVerdict:
    if not reference.by_seed or not candidate.by_seed:
        raise ValueError("compare_over_seeds: each recipe needs at least one seed")
    difference_sd = math.sqrt(reference.run_variance / len(reference.by_seed)
                              + candidate.run_variance / len(candidate.by_seed))
    difference = candidate.mean - reference.mean
    verdict = "worse" if difference > difference_sd else "better" if difference < -difference_sd else "level"
    paired = sorted(set(reference.by_seed) & set(candidate.by_seed))
    wins = sum(candidate.by_seed[s][0] < reference.by_seed[s][0] for s in paired)
    return SeedVerdict(reference.mean, candidate.mean, difference, reference.seed_sd, candidate.seed_sd,
                       difference_sd, verdict, len(paired), wins)


def target_met(verdicts: Mapping[int, SeedVerdict], rarest: int) -> bool:
    """Issue 17's target over seeds: no class worse, and the rarest better."""
    return all(v.verdict != "worse" for v in verdicts.values()) and verdicts[rarest].verdict == "better"
