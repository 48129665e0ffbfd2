"""Claims: a notebook's lesson stated as comparisons whose verdicts come from the run's own numbers.

A notebook does not *say* that logits beat softmax outputs; it measures both, with their
uncertainty, and lets a `Claims` table decide::

    claims = ck.Claims(ck.run_case(cfg, data, weights=model.weights_source))
    logits = ck.Estimate.accuracy([0.452, 0.447, 0.460], n=1000, label="logits")
    softmax = ck.Estimate.accuracy([0.201, 0.215, 0.190], n=1000, label="softmax")
    claims.greater("logits_beat_softmax", "The logits model ends with the higher test accuracy",
                   logits, softmax, margin=0.05)
    claims.show()            # the verdict table, with the case of this run
    claims.check()           # the invariants cell: every claim must reach its expected verdict

Uncertainty (`Estimate`):

* a test accuracy is a binomial proportion over ``n`` test images: its standard error is
  ``sqrt(p (1 - p) / n)``;
* where several seeds were run, their spread adds ``sd / sqrt(seeds)`` (the seeds share the test
  images, so the two parts are added in quadrature, not divided together);
* a difference of two estimates adds their variances (treating them as independent, which is
  conservative for runs scored on the same images).

Intervals are 95% normal intervals (``Z`` standard errors either side).

Verdicts (`VERDICTS`): ``holds`` (the whole interval is on the claimed side of the threshold),
``does not hold`` (the whole interval is on the other side), ``inconclusive`` (the interval
straddles the threshold) and ``not testable here`` (this run lacks what the claim needs, with the
reason, e.g. "needs ImageNet weights (this run: random init)").

A claim that can come out "not testable here" (one stated with ``needs``, or with `not_testable`)
must say what to expect where it *can* be tested: ``elsewhere="With ImageNet weights ... (source:
...)"``, the reference outcome with its source (the seed's figure, a recorded full run, a paper).
The verdict table shows it on the row whenever the run cannot test the claim, so a student never
meets an untestable verdict beside evidence that reads as a failure without being told what the
case they cannot run would show. `ELSEWHERE_SOURCE` is the marker the text must contain.

A claim's ``expect`` is the verdict the notebook asserts in its invariants cell: ``"holds"`` by
default, another verdict where the prose says the outcome differs in this run's case, or ``None``
to report without asserting (say why in the prose).

Expected verdicts are asserted only in the cases the course was sized for (`RunCase.sized`: one of
its profiles with the profile's own settings, a seed and a data source of the lessons sweep). Under
other settings, a student's changed epochs say, `Claims.check` prints a banner naming the claims
that came out differently and the changed settings instead of raising: a lesson that does not show
there is a finding about those settings, and the run reports the notebook as "differs" (ran to the
end, differs from the course), not failed. The notebook's own ``assert`` lines, which check the
code itself, fail in every case.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..validation import number, positive_int

__all__ = ["Estimate", "Claim", "Claims", "RunCase", "run_case", "VERDICTS", "HOLDS", "FAILS",
           "INCONCLUSIVE", "NOT_TESTABLE", "Z", "ELSEWHERE_SOURCE"]

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable here"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_TESTABLE)
Z = 1.96  # standard errors either side of a 95% normal interval
ELSEWHERE_SOURCE = "(source:"  # an expectation for the untestable case names its source like this


def _is_nested(values) -> bool:
    """True for a list of per-image result lists (one per seed), False for one such list."""
    first = next(iter(values), None)
    if hasattr(first, "ndim"):  # a tensor or an array: a row of a 2-D one is nested
        return first.ndim > 0
    return isinstance(first, (list, tuple))


@dataclass(frozen=True)
class Estimate:
    """A measured quantity: its value (the mean over seeds), standard error and per-seed values.
    Notebook 01 introduces it.

    Build one with `Estimate.accuracy` (test accuracies, binomial + seed spread), `Estimate.mean`
    (any per-seed measurement: spread over seeds only) or `Estimate.exact` (a count or a ratio
    that has no sampling noise). ``percent`` formats the value as a percentage.
    """

    value: float
    se: float
    label: str = ""
    per_seed: tuple = ()
    n: int | None = None
    percent: bool = False
    samples: str = "seeds"  # what the per-seed values are (e.g. "timing rounds"), for the printed text

    @classmethod
    def accuracy(cls, accs, n: int, label: str = "") -> "Estimate":
        """Test accuracy (a fraction) of one run, or a sequence of them (one per seed), each
        measured on the same `n` test images."""
        values = [number("accuracy", a) for a in (accs if isinstance(accs, Iterable) else [accs])]
        if not values or not all(0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"accuracies must be fractions in [0, 1], got {values!r}")
        n = positive_int("n (test images)", n)
        p = statistics.fmean(values)
        seed_var = statistics.variance(values) / len(values) if len(values) > 1 else 0.0
        se = math.sqrt(max(p * (1 - p), 0.25 / n) / n + seed_var)  # never 0, even at p = 0 or 1
        return cls(p, se, label, tuple(values), n, percent=True)

    @classmethod
    def paired(cls, correct_a, correct_b, label: str = "") -> "Estimate":
        """The accuracy difference ``a - b`` of two models scored on the same test images.

        `correct_a`, `correct_b`: bool tensors or sequences (which images each model got right,
        e.g. ``evaluate(..., per_image=True)["correct"]``), or lists of them, one pair per seed.
        The standard error comes from the per-image differences (``sd / sqrt(n)``, as in a paired
        test), so two models that disagree on few images are told apart more sharply than two
        independent accuracies would be; several seeds add their spread as in `accuracy`.
        """
        pairs = list(zip(correct_a, correct_b)) if _is_nested(correct_a) else [(correct_a, correct_b)]
        diffs, variances = [], []
        for a, b in pairs:
            a, b = [float(v) for v in a], [float(v) for v in b]
            if len(a) != len(b) or not a:
                raise ValueError(f"paired() needs two equally long, non-empty lists of per-image "
                                 f"results, got {len(a)} and {len(b)}")
            d = [x - y for x, y in zip(a, b)]
            diffs.append(statistics.fmean(d))
            sd = statistics.pstdev(d) if len(d) > 1 else 0.0
            variances.append(max(sd * sd, 0.25 / len(d)) / len(d))  # never 0: one flip is possible
        seed_var = statistics.variance(diffs) / len(diffs) if len(diffs) > 1 else 0.0
        se = math.sqrt(statistics.fmean(variances) + seed_var)
        return cls(statistics.fmean(diffs), se, label, tuple(diffs), len(pairs[0][0]), percent=True)

    @classmethod
    def mean(cls, values, label: str = "", percent: bool = False, samples: str = "seeds") -> "Estimate":
        """The mean of per-seed measurements with its standard error ``sd / sqrt(seeds)``
        (0 for a single seed: then the claim rests on that one value). `samples` names what the
        values are where they are not seeds (``"timing rounds"``): the printed text says so."""
        values = [number("value", v) for v in (values if isinstance(values, Iterable) else [values])]
        if not values:
            raise ValueError("mean() needs at least one value")
        se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), se, label, tuple(values), percent=percent, samples=samples)

    @classmethod
    def exact(cls, value, label: str = "", percent: bool = False) -> "Estimate":
        """A value without sampling noise (a parameter count, a measured sparsity)."""
        return cls(number("value", value), 0.0, label, (float(value),), percent=percent)

    @property
    def lo(self) -> float:
        """Lower end of the 95% interval."""
        return self.value - Z * self.se

    @property
    def hi(self) -> float:
        """Upper end of the 95% interval."""
        return self.value + Z * self.se

    @property
    def seeds(self) -> int:
        """How many seeds (runs) the value averages."""
        return len(self.per_seed)

    def fmt(self, value: float) -> str:
        """`value` in this estimate's unit."""
        return f"{100 * value:.1f}%" if self.percent else f"{value:.4g}"

    def __sub__(self, other: "Estimate") -> "Estimate":
        per_seed = tuple(a - b for a, b in zip(self.per_seed, other.per_seed)) \
            if self.seeds == other.seeds else ()
        return Estimate(self.value - other.value, math.hypot(self.se, other.se),
                        f"{self.label} - {other.label}", per_seed, percent=self.percent)

    def __str__(self) -> str:
        text = f"{self.label} {self.fmt(self.value)}" if self.label else self.fmt(self.value)
        if self.se > 0:
            text += f" [{self.fmt(self.lo)}, {self.fmt(self.hi)}]"
        if self.seeds > 1:
            text += f" ({self.seeds} {self.samples}, sd {self.fmt(statistics.stdev(self.per_seed))})"
        return text


@dataclass(frozen=True)
class RunCase:
    """The conditions a verdict depends on: the data, the starting weights, the profile, the seed
    and the settings changed from the profile (``changed``: ``(name, value, profile's value)``
    triples, as `cifarkit.course.setup` records them in ``cfg["changed"]``)."""

    data: str              # "synthetic" or the real source ("cifar10", "cifar10-unverified")
    init: str = "random"   # "random" or "imagenet" (or "trained": a checkpoint of this course)
    profile: str = "quick"
    seed: int = 0
    changed: tuple = ()

    @property
    def synthetic(self) -> bool:
        """True when the run trained on the synthetic stand-in."""
        return self.data == "synthetic"

    @property
    def imagenet(self) -> bool:
        """True when the run started from ImageNet weights."""
        return self.init == "imagenet"

    @property
    def sized(self) -> bool:
        """True in a case the course was sized for, where `Claims.check` asserts the expected
        verdicts: one of its profiles, no setting changed from it, a seed of
        `cifarkit.course.SIZED_SEEDS` and a data source of `cifarkit.course.SIZED_DATA`."""
        from .notebooks import SIZED_DATA, SIZED_SEEDS  # here, not at the top: the course imports torch
        from .profiles import PROFILE_NAMES
        return (self.profile in PROFILE_NAMES and not self.changed and self.seed in SIZED_SEEDS
                and self.data in SIZED_DATA)

    def changes(self) -> list[str]:
        """Each way this case differs from the cases the course was sized for, in words:
        ``"epochs=2 (the quick profile has 16)"``, ``"seed=7 (the course was sized on seeds 0, 1, 2, 3, 4)"``."""
        from .notebooks import SIZED_DATA, SIZED_SEEDS
        from .profiles import PROFILE_NAMES
        out = [f"{name}={value} (the {self.profile} profile has {default})" for name, value, default in self.changed]
        if self.profile not in PROFILE_NAMES:
            out.append(f"profile {self.profile!r} (the course was sized on {', '.join(PROFILE_NAMES)})")
        if self.seed not in SIZED_SEEDS:
            out.append(f"seed={self.seed} (the course was sized on seeds {', '.join(map(str, SIZED_SEEDS))})")
        if self.data not in SIZED_DATA:
            out.append(f"data {self.data!r} (the course was sized on {', '.join(SIZED_DATA)})")
        return out

    def __str__(self) -> str:
        from .notebooks import SIZED_SEEDS
        data = "SYNTHETIC data" if self.synthetic else "CIFAR-10" + (
            " (partly JPEG-derived copy)" if self.data == "cifar10-unverified" else "")
        init = {"random": "random init", "imagenet": "ImageNet weights",
                "trained": "weights from a checkpoint"}.get(self.init, self.init)
        text = f"{data}, {init}, {self.profile} profile"
        text += "".join(f", {name}={value} (changed)" for name, value, _ in self.changed)
        return text + (f", seed={self.seed} (changed)" if self.seed not in SIZED_SEEDS else "")


def _frozen(value):
    """`value` with its lists made tuples, so that a `RunCase` holding it can be hashed."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    return value


def run_case(cfg, data, weights: str | None = None) -> RunCase:
    """The `RunCase` of a notebook run: its profile `cfg` (its name, seed and the settings it
    changed, ``cfg["changed"]``), its `data` (a `CifarData`) and the source of its starting weights
    (a model's ``weights_source`` text, or None for random).
    Notebook 01 introduces it."""
    text = str(weights or "random").lower()
    if text.startswith(("random", "none")):  # "random (imagenet unavailable)" is random too
        init = "random"
    elif text.startswith("imagenet"):
        init = "imagenet"
    else:
        init = "trained" if text.startswith("file:") else str(weights)  # e.g. "notebook 03, ..."
    changed = tuple((name, _frozen(value), _frozen(default))
                    for name, (value, default) in (cfg.get("changed") or {}).items())
    return RunCase(data=data.source, init=init, profile=cfg.get("name", "quick"), seed=cfg.get("seed", 0),
                   changed=changed)


@dataclass
class Claim:
    """One statement of the lesson with its computed verdict (see the module docstring)."""

    name: str
    statement: str
    verdict: str
    case: str
    evidence: str = ""
    reason: str | None = None
    expect: str | None = HOLDS
    elsewhere: str | None = None  # what to expect where this run cannot test it, with its source

    def __post_init__(self):
        for attr in ("verdict", "expect"):
            value = getattr(self, attr)
            if not (value in VERDICTS or (attr == "expect" and value is None)):
                raise ValueError(f"{attr} must be one of {VERDICTS}, got {value!r}")

    @property
    def as_expected(self) -> bool:
        """True when the verdict is the expected one (always, for untestable or unasserted claims)."""
        return self.expect is None or self.verdict in (self.expect, NOT_TESTABLE)

    def to_dict(self) -> dict:
        """The claim as plain JSON data (what `record_results` stores under ``"claims"``)."""
        return {"name": self.name, "statement": self.statement, "verdict": self.verdict,
                "case": self.case, "evidence": self.evidence, "reason": self.reason,
                "expect": self.expect, "elsewhere": self.elsewhere}


def check_elsewhere(name: str, elsewhere: Any) -> str:
    """`elsewhere` of claim `name` if it says what to expect where the claim is testable and names
    its source (contains `ELSEWHERE_SOURCE`); a one-line ValueError otherwise."""
    if not isinstance(elsewhere, str) or not elsewhere.strip():
        raise ValueError(f"claim {name!r} can come out 'not testable here' (it has needs=...), so it must "
                         f"pass elsewhere='what to expect where it is testable {ELSEWHERE_SOURCE} ...)'")
    if ELSEWHERE_SOURCE not in elsewhere:
        raise ValueError(f"claim {name!r}: elsewhere={elsewhere!r} must name its source, as "
                         f"'{ELSEWHERE_SOURCE} the seed's log)', '{ELSEWHERE_SOURCE} bench/...)' or a paper")
    return elsewhere


def _verdict(lo: float, hi: float, threshold: float) -> str:
    if lo > threshold:
        return HOLDS
    if hi < threshold:
        return FAILS
    return INCONCLUSIVE


@dataclass
class Claims:
    """The verdict table of one notebook run. Add claims with `greater`, `above`, `below` and
    `not_testable`; show them with `show`; assert them with `check`; record them with
    ``ck.record_results(..., claims=claims)``. Notebook 01 introduces it."""

    case: RunCase
    claims: list[Claim] = field(default_factory=list)

    def _add(self, name, statement, verdict, evidence, reason=None, expect=HOLDS, needs=None,
             elsewhere=None, untestable=False) -> Claim:
        if any(c.name == name for c in self.claims):
            raise ValueError(f"claim {name!r} is stated twice")
        if needs is not None or untestable:
            check_elsewhere(name, elsewhere)
        if needs is not None and not needs[0]:
            verdict, reason = NOT_TESTABLE, needs[1]
        claim = Claim(name, statement, verdict, str(self.case), evidence, reason, expect, elsewhere)
        self.claims.append(claim)
        return claim

    def greater(self, name: str, statement: str, a: Estimate, b: Estimate, margin: float = 0.0,
                expect: str | None = HOLDS, needs: tuple[bool, str] | None = None,
                elsewhere: str | None = None) -> Claim:
        """Claim ``a > b + margin``, judged on the 95% interval of ``a - b``.

        `needs` is ``(condition, reason)``: when the condition is False the claim is "not testable
        here" for that reason (e.g. ``(case.imagenet, "needs ImageNet weights (this run: random
        init)")``); a claim with `needs` must also pass `elsewhere`, what to expect where it can be
        tested, with its source (see the module docstring)."""
        diff = a - b
        sign = "+" if diff.value >= 0 else "-"
        unit = " points" if diff.percent else ""
        scale = 100 if diff.percent else 1
        evidence = (f"{a} vs {b}: difference {sign}{abs(diff.value) * scale:.3g}{unit}, 95% interval "
                    f"[{diff.lo * scale:.3g}, {diff.hi * scale:.3g}]; claimed > {margin * scale:g}{unit}")
        return self._add(name, statement, _verdict(diff.lo, diff.hi, margin), evidence,
                         expect=expect, needs=needs, elsewhere=elsewhere)

    def above(self, name: str, statement: str, a: Estimate, threshold: float,
              expect: str | None = HOLDS, needs: tuple[bool, str] | None = None,
              elsewhere: str | None = None) -> Claim:
        """Claim ``a > threshold``, judged on the 95% interval of `a`."""
        evidence = f"{a}; claimed > {a.fmt(threshold)}"
        return self._add(name, statement, _verdict(a.lo, a.hi, threshold), evidence,
                         expect=expect, needs=needs, elsewhere=elsewhere)

    def below(self, name: str, statement: str, a: Estimate, threshold: float,
              expect: str | None = HOLDS, needs: tuple[bool, str] | None = None,
              elsewhere: str | None = None) -> Claim:
        """Claim ``a < threshold``, judged on the 95% interval of `a`."""
        evidence = f"{a}; claimed < {a.fmt(threshold)}"
        return self._add(name, statement, _verdict(-a.hi, -a.lo, -threshold), evidence,
                         expect=expect, needs=needs, elsewhere=elsewhere)

    def not_testable(self, name: str, statement: str, reason: str, elsewhere: str | None = None) -> Claim:
        """A claim this run cannot test, with the reason (what it would need) and `elsewhere`, what
        to expect where it can be tested, with its source."""
        return self._add(name, statement, NOT_TESTABLE, "", reason=reason, untestable=True, elsewhere=elsewhere)

    def __iter__(self):
        return iter(self.claims)

    def __len__(self) -> int:
        return len(self.claims)

    def __getitem__(self, name: str) -> Claim:
        for claim in self.claims:
            if claim.name == name:
                return claim
        raise KeyError(f"no claim {name!r}; the claims are {[c.name for c in self.claims]}")

    def to_list(self) -> list[dict]:
        """Every claim as a dict (see `Claim.to_dict`)."""
        return [c.to_dict() for c in self.claims]

    def markdown(self) -> str:
        """The verdict table as Markdown, headed by the case of this run (the table of the run
        report, `claims_markdown`)."""
        return "\n".join([f"**Verdicts** ({self.case})", ""] + claims_markdown(self.to_list()))

    def text(self) -> str:
        """The verdict table as plain text (one claim per line, then its evidence)."""
        lines = [f"Verdicts ({self.case}):"]
        for c in self.claims:
            lines.append(f"  [{c.verdict}] {c.statement}")
            lines.append(f"      {c.evidence if c.verdict != NOT_TESTABLE else c.reason}")
            if c.verdict == NOT_TESTABLE and c.elsewhere:
                lines.append(f"      where testable: {c.elsewhere}")
        return "\n".join(lines)

    def show(self) -> None:
        """Print the verdict table, and render it as Markdown in a notebook."""
        print(self.text())
        try:
            from IPython import get_ipython
            from IPython.display import Markdown, display
            if get_ipython() is not None:
                display(Markdown(self.markdown()))
        except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks only
            pass

    def differing(self) -> list[Claim]:
        """The claims whose verdict is not the expected one (see `Claim.as_expected`)."""
        return [c for c in self.claims if not c.as_expected]

    def check(self) -> list[Claim]:
        """Check every claim against its expected verdict, and return those off it.

        In a case the course was sized for (`RunCase.sized`) a claim off its expected verdict is an
        error: raise AssertionError naming every such claim (so CI fails when a lesson does not
        show). In any other case print a banner naming them and the changed settings: a lesson
        that does not show under a student's own settings is a finding about those settings."""
        wrong = self.differing()
        lines = [f"{c.name}: expected '{c.expect}', got '{c.verdict}' ({c.evidence})" for c in wrong]
        if wrong and self.case.sized:
            raise AssertionError(f"{len(wrong)} claim(s) off their expected verdict in this case "
                                 f"({self.case}):\n  " + "\n  ".join(lines))
        if not self.case.sized:
            print(differs_banner(self.case.changes(), lines, len(self.claims)))
        return wrong

    def summary(self) -> dict[str, int]:
        """How many claims reached each verdict."""
        return {v: sum(c.verdict == v for c in self.claims) for v in VERDICTS}


def differs_banner(changes: Sequence[str], differing: Sequence[str], n_claims: int) -> str:
    """The banner `Claims.check` prints in a case the course was not sized for: the `changes` (in
    words, `RunCase.changes`) and the `differing` claims (one line each) of the `n_claims`."""
    rule = "=" * 78
    lines = [rule, "These settings differ from the ones the course was sized for:"]
    lines += [f"  {change}" for change in changes]
    if differing:
        lines.append(f"Under them {len(differing)} of {n_claims} claim(s) came out differently from the course:")
        lines += [f"  {line}" for line in differing]
        lines.append("A lesson that does not show here is a finding about these settings, not an error; the "
                     "course asserts its expected verdicts only with its own settings.")
    else:
        lines.append(f"Under them all {n_claims} claim(s) reached the course's expected verdicts.")
    return "\n".join(lines + [rule])


def md_cell(text: Any) -> str:
    """`text` made safe for one cell of a markdown table."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def claims_markdown(claims: Iterable[Mapping[str, Any]]) -> list[str]:
    """A notebook's verdict table: claim | verdict (with its reason) | evidence | case. A claim not
    testable here shows no evidence: what this run measured answers another case's question (e.g.
    random filters for a claim about ImageNet features), as in `Claims.text`."""
    claims = list(claims)
    if not claims:
        return []
    lines = ["| Claim | Verdict | Evidence | Case |", "|---|---|---|---|"]
    for c in claims:
        verdict = f"**{c['verdict']}**" + (f": {c['reason']}" if c.get("reason") else "")
        if c["verdict"] == NOT_TESTABLE and c.get("elsewhere"):
            verdict += f". Where testable: {c['elsewhere']}"
        lines.append(f"| {md_cell(c['statement'])} | {md_cell(verdict)} | "
                     f"{md_cell((c['verdict'] != NOT_TESTABLE and c.get('evidence')) or '-')} | "
                     f"{md_cell(c.get('case') or '-')} |")
    lines.append("")
    return lines


def verdict_counts(claims: Sequence[dict]) -> dict[str, int]:
    """How many of the recorded claims (dicts) reached each verdict."""
    return {v: sum(c.get("verdict") == v for c in claims) for v in VERDICTS}
