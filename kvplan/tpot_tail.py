"""A request's own time per output token (TPOT) at a quantile: the mean of the steps its decoding spans.

A request that decodes ``m`` steps after its first token (``m = O - 1`` for ``O`` output tokens) has a TPOT of
``L / m``, ``L`` the time those steps take: its life. Every request sees the same mean step, kvplan.serving's
mean TPOT ``t``; what spreads the requests is what lands in their own lives. In a step-by-step run
(benchmarks/serving_sim.py ``--tpot``) two things do:

* **the prompts that arrive while it decodes.** Each adds its prompt work to one or a few of its steps (a chunk in a
  mixed step, a prompt step where they are apart), ``a`` seconds on average: the share of the mean step spent on
  prompts, ``(t - d) / t`` (``d`` the same step without prompt work), over the arrivals a step, ``lambda t``, so
  ``a = (t - d) / (lambda t)``, which keeps the mean exactly kvplan.serving's. Its spread follows what one more
  arrival adds, ``a'``, the mean step's slope in the arrivals (kvplan.serving ``_life``: where arrivals share steps,
  attention-DP ranks' chunks landing in one step that lasts as its busiest rank, or prompts packing a prompt step,
  one more adds less than the average; the life's work linearized about the mean count, the delta method); ``a' = a``
  where each arrival's prompt runs on its own. A request whose life meets a burst of
  arrivals is slow, and a longer life meets more arrivals: the life ends when the work in it is done, so ``L = C +
  sum of X_i over the arrivals in [0, L]``, the busy period of an M/G/1 queue started by the work ``C``
  (Kendall's branching argument: each arrival's work brings its own arrivals; L. Kleinrock, Queueing Systems I,
  1975, s. 5.8, the busy period's mean ``w / (1 - rho)`` and variance ``w lambda E[X^2] / (1 - rho)^3`` from an
  initial work ``w``);
* **the sequences decoding beside it.** A decode step grows by ``b`` seconds per sequence (the step's slope at the
  mean batch, a secant: CUDA-graph padding makes it jump). The ``K`` others decoding when it starts (Poisson with
  the mean batch ``n``: arrivals at random, each staying its output's steps, an M/G/infinity count) leave at
  residual lives uniform on ``[0, m]``, so they add ``b`` times a compound Poisson sum to ``C``: mean ``b n m / 2``,
  variance ``b^2 n m^2 / 3``. An arrival during its life decodes beside it for the steps it has left, uniform on
  ``[0, m]``: ``X = a' s + b U m``, ``s`` the arrival's prompt over the mean prompt (mean 1, squared coefficient of
  variation the prompts', 0 where no spread is given), ``U`` uniform on [0, 1], so ``E[X] = a' + b m / 2`` and
  ``E[X^2] = a'^2 (1 + scv) + a' b m + b^2 m^2 / 3``.

With ``rho = lambda E[X]`` the life's mean is ``E[C] / (1 - rho)``, set to ``m t`` (kvplan.serving's mean), and its
variance ``Var[C] / (1 - rho)^2 + E[C] lambda E[X^2] / (1 - rho)^3`` (the busy period's, over the random start
``C``).

**The quantile.** With every arrival's work the same (``X = h``) and a fixed start ``c``, the arrivals ``N`` in a
life follow the generalized Poisson distribution, ``P(N = k) = theta (theta + k r)^(k - 1) exp(-theta - k r) /
k!`` with ``theta = lambda c`` and ``r = lambda h`` (the count served in an M/D/1 busy period started by the work
``c``: the Borel-Tanner law's generalization; P. C. Consul and G. C. Jain, "A generalization of the Poisson
distribution", Technometrics 15, 1973, and Consul's 1989 monograph, s. 2.1 and 9.2), and ``L = c + h N``. kvplan
takes that form with ``c`` and ``h`` chosen so the life's mean and variance are the ones above (a two-moment
match, stated: it is exact where the sequences' slope is 0 and every prompt the same): ``h / (1 - lambda h) =
sigma / sqrt(lambda mu)``, ``c = mu (1 - lambda h)``. The mean count is then ``lambda mu``, the arrivals in a mean
life. The count's distribution is summed term by term (it is discrete where few prompts arrive in a life, which is
where the tail's shape matters: at a low rate most requests meet no prompt and a few meet one); where the sum
would run past :data:`SUM_TERMS` terms the count is near-continuous and its quantile is the Pearson type III one
with the generalized Poisson's skewness ``(1 + 2 r) / sqrt(theta (1 - r))`` (the Wilson-Hilferty frequency factor;
e.g. V. T. Chow, Handbook of Applied Hydrology, 1964, s. 8-I), or where the skewness is past that form's reach
(:data:`MAX_SKEW`; ``r`` near 1, a life at the edge of saturation) Cantelli's one-sided bound ``mean + sd sqrt(q / (1
- q))``, which holds for any distribution.

The prompts queued behind a request at its first token and prefilled in its life (kvplan.serving ``_own_life``, stop
27) are in the mean ``t`` and start the busy period: their work's variance (a Poisson count of prompts, each its
prompt work, the prompts' spread where given) adds to ``Var[C]`` (``backlog_var_s2``), and ``n`` is the others a life
sees, Little's law on its TPOT.

**CUDA-graph sizes met as stairs (stop 29).** Where the engine pads a decode step up to the next captured size and that
size lies far above (TensorRT-LLM's 128, 256, 384, 512 a rank in the MLPerf DeepSeek-R1 runs), the step rises by a
jump ``J`` as the count passes a size ``g``, and a slope through the jump (the secant over ``n +- 2 sqrt(n)`` took it in
whole once its edge passed ``g``) made the tail jump with it and the busy period multiply it: the p99 of DeepSeek-R1's
3,497-step lives doubled between two rates 0.1 % apart. kvplan.serving ``_graph_jumps`` takes such sizes out of
``b`` and :meth:`Life.stairs_at` adds each one's ``J`` times the share of the quantile's life spent past it: continuous
in the rate and bounded by ``J`` (a life entirely past the size runs the padded steps, no slower).

Limits: no arrivals (rate 0) give every request the plain step ``t``; the quantiles rise with ``q``. Not modelled,
stated: where the outputs vary, the requests' own life lengths (every life is the mean output's ``m`` steps), and the
TTFT's own spread in the backlog's count (taken at the mean TTFT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

# Past this many terms (the count's mean + 12 standard deviations) the generalized Poisson count is summed no more:
# with a standard deviation of ~250 arrivals its distribution is near-continuous, and the Pearson III quantile is
# used instead (module docstring). Chosen for speed (a sum of 3,000 terms is about a millisecond in CPython).
SUM_TERMS = 3000
# The Wilson-Hilferty factor ``(2 / g) ((1 + g z / 6 - g^2 / 36)^3 - 1)`` needs its base above 0, which at the median
# (z = 0) holds for a skewness ``g`` below 6: past it (a life at the edge of saturation) Cantelli's bound is used.
MAX_SKEW = 6.0


@dataclass(frozen=True)
class Life:
    """The decoding life of a request in a steady state (module docstring for the symbols)."""

    steps: float  # m: decode steps after its first token (the mean output - 1, at least 1)
    mean_step_s: float  # t: the mean step a request sees (kvplan.serving's mean TPOT)
    decode_step_s: float  # d: that step with no prompt work
    slope_s: float  # b: one more sequence decoding, per step
    others: float  # n: the mean sequences decoding beside it
    rate_rps: float  # lambda: requests arriving per second
    prompt_scv: float = 0.0  # the arrivals' prompt lengths' squared coefficient of variation
    prompt_margin_s: float | None = None  # what one more arrival adds where arrivals share steps (None: the average)
    backlog_var_s2: float = 0.0  # the variance of the prompt work queued behind it at its first token (s^2)
    # CUDA-graph sizes met as stairs (kvplan.serving._graph_jumps): (size - step_batch, the step's rise past it) each,
    # in sequences of the replica and seconds; their rise is not in ``slope_s``
    graph_jumps: tuple[tuple[float, float], ...] = ()
    step_batch: float = 0.0  # the decoding count the steps are priced at (the stairs' origin; its spread sqrt of it)

    def prompt_work_s(self) -> float:
        """``a``: the prompt work one arrival adds to the steps it lands in, on average."""
        if self.rate_rps <= 0:
            return 0.0
        return max(0.0, self.mean_step_s - self.decode_step_s) / (self.rate_rps * self.mean_step_s)

    def moments(self) -> tuple[float, float]:
        """(mean, variance) of the life in seconds."""
        m, lam, b = self.steps, self.rate_rps, max(0.0, self.slope_s)
        mean = m * self.mean_step_s
        if lam <= 0:
            return mean, 0.0
        a = self.prompt_work_s() if self.prompt_margin_s is None else self.prompt_margin_s
        work = a + b * m / 2  # E[X]
        work2 = a * a * (1 + self.prompt_scv) + a * b * m + b * b * m * m / 3  # E[X^2]
        rho = min(lam * work, 1 - 1e-9)
        start = mean * (1 - rho)  # E[C]
        start_var = b * b * max(0.0, self.others) * m * m / 3 + self.backlog_var_s2  # Var[C]
        return mean, start_var / (1 - rho) ** 2 + start * lam * work2 / (1 - rho) ** 3

    def tpot_at(self, q: float) -> float:
        """The TPOT at quantile ``q`` (0 < q < 1) over the requests: the life's quantile over its steps."""
        mean, var = self.moments()
        lam = self.rate_rps
        if lam <= 0 or var <= 0:
            return self.mean_step_s
        k = math.sqrt(var / (lam * mean))  # h / (1 - lambda h)
        h, c = k / (1 + lam * k), mean / (1 + lam * k)
        count = count_quantile(lam * c, lam * h, q)
        return (c + h * count) / self.steps + self.stairs_at(q)

    def stairs_at(self, q: float) -> float:
        """What the graph sizes met as stairs (:attr:`graph_jumps`) add to the TPOT at quantile ``q``: each size's
        rise ``J`` times the share of the life's steps past it, less the share the mean step already carries (1 past
        a size below the batch, else 0), stretched as the decode steps are by the prompt work landing in them (``t /
        d``). The decoding count over the replica is Poisson with mean ``n`` (``step_batch``): its mean over a life is
        the others there at its start and those arriving in it, each for a uniform share of the life, variance ``2n /
        3`` (module docstring); the count within a life about that mean varies by the rest, ``n / 3``. The life at
        quantile ``q`` has the mean count ``n + z_q sqrt(2n / 3)`` (a normal approximation; the share of its steps
        past ``g`` rises with it, so the quantile maps through) and ``Phi((n + z_q sqrt(2n / 3) - g) / sqrt(n / 3))`` of
        its steps past ``g``. Added to the count's quantile (a comonotone sum: both rise with the batch a life meets).
        Bounded by ``J`` where the linear slope is not: a life entirely past a size runs its padded steps, no
        slower (serving_sim.py runs such lives step by step)."""
        if not self.graph_jumps or self.step_batch <= 0 or self.rate_rps <= 0:
            return 0.0
        n = self.step_batch
        level = NormalDist().inv_cdf(q) * math.sqrt(2 * n / 3)
        within = math.sqrt(n / 3)
        stretch = self.mean_step_s / self.decode_step_s if self.decode_step_s > 0 else 1.0
        added = 0.0
        for offset, jump in self.graph_jumps:
            share = NormalDist().cdf((level - offset) / within)
            added += jump * (share - (1.0 if offset < 0 else 0.0))
        return max(0.0, added * stretch)


def count_quantile(theta: float, r: float, q: float) -> float:
    """The ``q`` quantile of the generalized Poisson count with parameters ``theta > 0`` and ``0 <= r < 1`` (module
    docstring): the smallest ``k`` with ``P(N <= k) >= q``, summed term by term; past :data:`SUM_TERMS` terms the
    Pearson type III quantile at its mean, standard deviation and skewness (not a whole number)."""
    mean = theta / (1 - r)
    sd = math.sqrt(theta / (1 - r) ** 3)
    if mean + 12 * sd > SUM_TERMS:
        skew = (1 + 2 * r) / math.sqrt(theta * (1 - r))
        if skew > MAX_SKEW:  # past the Wilson-Hilferty form's reach: Cantelli's bound, for any distribution
            return mean + sd * math.sqrt(q / (1 - q))
        z = NormalDist().inv_cdf(q)
        base = max(0.0, 1 + skew * z / 6 - skew * skew / 36)
        return max(0.0, mean + sd * (2 / skew) * (base**3 - 1))
    total, k = 0.0, 0
    log_theta = math.log(theta)
    while True:
        # log P(N = k) = log theta + (k - 1) log(theta + k r) - theta - k r - log k!
        log_p = log_theta + (k - 1) * math.log(theta + k * r) - theta - k * r - math.lgamma(k + 1)
        total += math.exp(log_p)
        if total >= q or k > SUM_TERMS:
            return float(k)
        k += 1
