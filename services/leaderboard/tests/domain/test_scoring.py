import pytest
from thrive_leaderboard.domain.scoring import Counters, Metric, Weights, display, scorers

S = scorers(Weights())


def test_breadth_beats_volume_on_the_default_board():
    # Ten thanks from one person versus five thanks from five different people.
    narrow = Counters(n=10, d=1)
    broad = Counters(n=5, d=5)
    assert S[Metric.SERVICE](broad) > S[Metric.SERVICE](narrow)
    assert S[Metric.THANKS_RECEIVED](narrow) > S[Metric.THANKS_RECEIVED](broad)


def test_discounted_thanks_count_less():
    plain = Counters(n=4)
    ring = Counters(n=4, nd=4)
    assert S[Metric.HELP_GIVEN](ring) < S[Metric.HELP_GIVEN](plain)
    assert display(S[Metric.HELP_GIVEN](ring)) == 1.0
    assert S[Metric.SERVICE](ring) < S[Metric.SERVICE](plain)
    assert S[Metric.THANKS_RECEIVED](ring) == S[Metric.THANKS_RECEIVED](plain)


def test_each_simple_metric_reads_its_counter():
    c = Counters(n=3, nd=1, d=2, x=1, m=4)
    assert display(S[Metric.PEOPLE_HELPED](c)) == 2
    assert display(S[Metric.CROSS_TEAM](c)) == 1
    assert display(S[Metric.MILESTONES](c)) == 4
    # 2 full thanks + 0.25 + 2 people x 2 + 1 cross-team
    assert display(S[Metric.SERVICE](c)) == 7.25


def test_weights_refuse_nonsense():
    with pytest.raises(ValueError, match="more than a normal"):
        Weights(discounted=2)
    with pytest.raises(ValueError, match=">= 0"):
        Weights(breadth=-1)
