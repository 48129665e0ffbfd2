"""Claims and their verdicts: intervals, thresholds, cases, the invariants check."""
import math

import pytest

import cifarkit as ck
from cifarkit.course.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_TESTABLE, Claims, Estimate, RunCase


def test_accuracy_standard_error_is_binomial_for_one_seed():
    est = Estimate.accuracy(0.5, n=1000)
    assert est.se == pytest.approx(math.sqrt(0.25 / 1000))
    assert est.lo == pytest.approx(0.5 - 1.96 * est.se)
    assert est.percent and est.seeds == 1


def test_seed_spread_widens_the_interval():
    one = Estimate.accuracy(0.5, n=1000)
    spread = Estimate.accuracy([0.45, 0.50, 0.55], n=1000)
    assert spread.value == pytest.approx(0.5)
    assert spread.se == pytest.approx(math.sqrt(0.25 / 1000 + 0.0025 / 3))
    assert spread.se > one.se


def test_verdicts_follow_the_interval_of_the_difference():
    claims = Claims(RunCase("synthetic"))
    big = claims.greater("big", "a beats b", Estimate.accuracy(0.60, 1000, "a"), Estimate.accuracy(0.40, 1000, "b"))
    close = claims.greater("close", "a beats c", Estimate.accuracy(0.41, 1000, "a"),
                           Estimate.accuracy(0.40, 1000, "c"))
    wrong = claims.greater("wrong", "c beats a", Estimate.accuracy(0.40, 1000, "c"),
                           Estimate.accuracy(0.60, 1000, "a"))
    assert (big.verdict, close.verdict, wrong.verdict) == (HOLDS, INCONCLUSIVE, FAILS)
    assert "difference +20 points" in big.evidence


def test_margin_moves_the_threshold():
    claims = Claims(RunCase("synthetic"))
    a, b = Estimate.accuracy(0.60, 1000, "a"), Estimate.accuracy(0.40, 1000, "b")
    assert claims.greater("m10", "by 10 points", a, b, margin=0.10).verdict == HOLDS
    assert claims.greater("m20", "by 20 points", a, b, margin=0.20).verdict == INCONCLUSIVE
    assert claims.greater("m30", "by 30 points", a, b, margin=0.30).verdict == FAILS


def test_above_and_below_thresholds():
    claims = Claims(RunCase("cifar10"))
    acc = Estimate.accuracy(0.30, 1000, "acc")
    assert claims.above("chance", "above chance", acc, 0.10).verdict == HOLDS
    assert claims.below("low", "below 50%", acc, 0.50).verdict == HOLDS
    assert claims.above("high", "above 50%", acc, 0.50).verdict == FAILS
    assert claims.below("edge", "below 30.5%", acc, 0.305).verdict == INCONCLUSIVE


def test_exact_values_have_no_interval():
    claims = Claims(RunCase("cifar10"))
    assert claims.above("x", "x > 1", Estimate.exact(1.0001), 1.0).verdict == HOLDS
    assert "[" not in str(Estimate.exact(3.0, "count"))


def test_needs_makes_a_claim_untestable_with_its_reason():
    case = RunCase("synthetic", init="random")
    claims = Claims(case)
    c = claims.greater("transfer", "ImageNet features transfer", Estimate.accuracy(0.9, 100),
                       Estimate.accuracy(0.1, 100),
                       needs=(case.imagenet, "needs ImageNet weights (this run: random init)"),
                       elsewhere="With ImageNet weights the head ends near 84% (source: the seed's log)")
    assert c.verdict == NOT_TESTABLE and "ImageNet" in c.reason
    claims.check()  # an untestable claim is never an assertion failure
    assert "where testable: With ImageNet weights the head ends near 84%" in claims.text()
    assert "Where testable: With ImageNet weights" in claims.markdown()
    assert "90.0%" not in claims.markdown() and "90.0%" not in claims.text()  # random-init evidence, another case's
    assert c.to_dict()["elsewhere"].endswith("(source: the seed's log)")


def test_a_claim_that_can_be_untestable_must_say_what_to_expect_elsewhere():
    case = RunCase("synthetic", init="random")
    claims = Claims(case)
    a, b = Estimate.accuracy(0.9, 100), Estimate.accuracy(0.1, 100)
    with pytest.raises(ValueError, match="'transfer' can come out 'not testable here'.*elsewhere="):
        claims.greater("transfer", "ImageNet features transfer", a, b, needs=(case.imagenet, "needs ImageNet"))
    with pytest.raises(ValueError, match="must name its source"):
        claims.above("head", "head above chance", a, 0.1, needs=(case.imagenet, "needs ImageNet"),
                     elsewhere="about 84%")
    with pytest.raises(ValueError, match="'later' can come out 'not testable here'"):
        claims.not_testable("later", "b transfers", "needs real CIFAR-10")
    # testable in this case, still required: the requirement is about the claim, not the run
    with pytest.raises(ValueError, match="elsewhere="):
        claims.below("tested", "tested here", a, 1.0, needs=(True, "never untestable here"))
    assert len(claims) == 0


def test_check_names_every_claim_off_its_expectation():
    claims = Claims(RunCase("synthetic"))
    claims.greater("ok", "holds", Estimate.accuracy(0.9, 1000), Estimate.accuracy(0.1, 1000))
    claims.greater("bad", "should hold", Estimate.accuracy(0.1, 1000), Estimate.accuracy(0.9, 1000))
    claims.greater("flip", "expected to fail here", Estimate.accuracy(0.1, 1000),
                   Estimate.accuracy(0.9, 1000), expect=FAILS)
    claims.greater("report", "reported only", Estimate.accuracy(0.5, 1000),
                   Estimate.accuracy(0.5, 1000), expect=None)
    with pytest.raises(AssertionError) as err:
        claims.check()
    assert "bad" in str(err.value) and "flip" not in str(err.value) and "report" not in str(err.value)


def test_case_text_and_run_case():
    data = ck.synthetic_cifar(n_train=20, n_test=10, seed=0)
    case = ck.run_case({"name": "quick"}, data, weights="random (imagenet unavailable)")
    assert not case.imagenet and case.synthetic
    assert str(case) == "SYNTHETIC data, random init, quick profile"
    real = ck.run_case({"name": "full"}, data.__class__(data.x_train, data.y_train, data.x_test, data.y_test,
                                                         data.classes, "cifar10-unverified"),
                       weights="imagenet")
    assert real.imagenet and "partly JPEG" in str(real) and "full profile" in str(real)
    chain = ck.run_case({"name": "quick"}, data, weights="notebook 03 (started from ImageNet weights)")
    assert str(chain) == "SYNTHETIC data, notebook 03 (started from ImageNet weights), quick profile"
    assert not chain.imagenet  # notebook 04's models are 03's, whatever the chain started from


@pytest.mark.parametrize("available, weights, expected", [
    (False, "auto", "random init"), (True, "auto", "ImageNet weights"), (True, "imagenet", "ImageNet weights"),
    (True, None, "random init")])
def test_finetune_start_names_the_chains_first_weights(monkeypatch, available, weights, expected):
    from cifarkit import weights as weights_module

    def state_dict(arch):
        if not available:
            raise weights_module.WeightsUnavailableError(f"no {arch} weights offline")
        return {}
    monkeypatch.setattr(weights_module, "imagenet_state_dict", state_dict)
    assert ck.course.finetune_start({"finetune": {"weights": weights}}) == expected


def test_table_dict_and_bad_input():
    claims = Claims(RunCase("synthetic"))
    claims.above("a", "a > 10%", Estimate.accuracy(0.5, 100, "a"), 0.1)
    claims.not_testable("b", "b transfers", "needs real CIFAR-10 (this run: synthetic)",
                        elsewhere="On CIFAR-10 it transfers (source: a recorded run)")
    assert "| a > 10% | **holds** |" in claims.markdown()
    assert claims.to_list()[1]["verdict"] == NOT_TESTABLE
    assert claims.summary()[HOLDS] == 1 and claims["b"].reason.startswith("needs")
    with pytest.raises(ValueError, match="stated twice"):
        claims.above("a", "again", Estimate.accuracy(0.5, 100), 0.1)
    with pytest.raises(ValueError, match="accuracies must be fractions"):
        Estimate.accuracy(42.0, 100)
    with pytest.raises(ValueError, match="finite"):
        Estimate.accuracy(float("nan"), 100)
    with pytest.raises(ValueError, match="n \\(test images\\)"):
        Estimate.accuracy(0.5, True)
    with pytest.raises(KeyError, match="no claim 'zzz'"):
        claims["zzz"]


def test_paired_difference_is_sharper_than_two_independent_accuracies():
    import torch
    a = torch.zeros(1000, dtype=torch.bool)
    a[:500] = True
    b = a.clone()
    b[:20] = False          # b loses 20 images that a got right, agrees on the other 980
    paired = Estimate.paired(a, b, "a - b")
    assert paired.value == pytest.approx(0.02)
    independent = Estimate.accuracy(0.5, 1000) - Estimate.accuracy(0.48, 1000)
    assert paired.se < independent.se / 3
    claims = Claims(RunCase("synthetic"))
    assert claims.above("d", "a beats b", paired, 0.0).verdict == HOLDS
    assert claims.above("d2", "a beats b (unpaired)", independent, 0.0).verdict == INCONCLUSIVE


def test_paired_over_seeds_and_identical_models():
    same = Estimate.paired([True, False, True, True], [True, False, True, True])
    assert same.value == 0 and same.se > 0          # no disagreement, still an interval
    seeds = Estimate.paired([[1, 1, 0, 0], [1, 0, 0, 0]], [[1, 0, 0, 0], [1, 0, 0, 0]])
    assert seeds.seeds == 2 and seeds.value == pytest.approx(0.125)
    with pytest.raises(ValueError, match="equally long"):
        Estimate.paired([1, 0], [1])


def test_mean_names_what_its_samples_are():
    assert "(3 seeds, sd" in str(Estimate.mean([1.0, 2.0, 3.0], "x"))
    rounds = Estimate.mean([1.0, 2.0, 3.0], "time ratio", samples="timing rounds")
    assert "(3 timing rounds, sd" in str(rounds) and "seeds" not in str(rounds)


def _off_claims(case):
    claims = Claims(case)
    claims.greater("ok", "holds", Estimate.accuracy(0.9, 1000), Estimate.accuracy(0.1, 1000))
    claims.greater("bad", "should hold", Estimate.accuracy(0.1, 1000), Estimate.accuracy(0.9, 1000))
    return claims


def test_a_case_the_course_was_not_sized_for_reports_instead_of_raising(capsys):
    changed = RunCase("synthetic", changed=(("epochs", 2, 16),))
    assert not changed.sized and str(changed) == "SYNTHETIC data, random init, quick profile, epochs=2 (changed)"
    assert [c.name for c in _off_claims(changed).check()] == ["bad"]  # returned, not raised
    banner = capsys.readouterr().out
    assert "epochs=2 (the quick profile has 16)" in banner and "1 of 2 claim(s) came out differently" in banner
    assert "bad: expected 'holds', got 'does not hold'" in banner and "ok:" not in banner
    # the same claims in the case the course was sized for: an error, as in CI
    with pytest.raises(AssertionError, match="1 claim\\(s\\) off their expected verdict"):
        _off_claims(RunCase("synthetic", seed=2)).check()
    for case in (RunCase("synthetic", seed=7), RunCase("synthetic", profile="tiny"), RunCase("mnist")):
        assert not case.sized
    assert "seed=7 (the course was sized on seeds 0, 1, 2, 3, 4)" in RunCase("cifar10", seed=7).changes()
    assert str(RunCase("cifar10", seed=7)).endswith("seed=7 (changed)")
    assert RunCase("cifar10", profile="full", seed=1).sized and RunCase("cifar10-unverified").sized
    # with nothing off, an unsized case still says so (the student sees the lesson held)
    claims = Claims(changed)
    claims.above("a", "a > 10%", Estimate.accuracy(0.5, 100), 0.1)
    assert claims.check() == [] and "all 1 claim(s) reached the course's expected verdicts" in capsys.readouterr().out


def test_setup_records_each_setting_changed_from_the_profile(capsys):
    data = ck.synthetic_cifar(n_train=20, n_test=10, seed=0)
    same = ck.setup("06_gated_cnn", "quick", verbose=False, epochs=16, seed=1, data="synthetic")
    assert same.changed == {} and ck.run_case(same, data).sized
    cfg = ck.setup("06_gated_cnn", "quick", epochs=2, seed=0, data="synthetic")
    assert cfg.changed == {"epochs": (2, 16)}
    assert "Changed from the quick profile: epochs=2 (the profile has 16)" in capsys.readouterr().out
    case = ck.run_case(cfg, data)
    assert not case.sized and str(case) == "SYNTHETIC data, random init, quick profile, epochs=2 (changed)"
    stem = ck.setup("01_softmax_vs_logits", "quick", verbose=False, stem="cifar", seed=9)
    assert str(ck.run_case(stem, data)).endswith("quick profile, stem=cifar (changed), seed=9 (changed)")
