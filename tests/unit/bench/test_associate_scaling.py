"""The associate scaling figures: each case against the one-replica case of its workspaces."""

from bench.associate_scaling import Case, Outcome, case_figures


def test_each_case_is_set_against_the_one_replica_case_of_its_workspaces() -> None:
    cases = [Case(1, 1), Case(1, 2), Case(4, 1), Case(4, 2)]
    outcomes = {
        Case(1, 1): Outcome(600, 2.0, [2.0]),
        Case(1, 2): Outcome(600, 2.0, [2.0, 0.1]),
        Case(4, 1): Outcome(2400, 8.0, [8.0]),
        Case(4, 2): Outcome(2400, 8.0, [5.0, 3.0]),
    }

    figures = {figure.name: figure for figure in case_figures(cases, outcomes)}

    assert figures["associate_scaling_msgs_per_s_w1_r1"].ratio == 1.0
    assert figures["associate_scaling_msgs_per_s_w4_r1"].baseline == 300.0  # w1_r1's rate
    # Two replicas over four workspaces: the busiest replica did 5 of the 8 CPU-seconds.
    bound = figures["associate_scaling_cpu_bound_msgs_per_s_w4_r2"]
    assert (bound.value, bound.baseline) == (480.0, 300.0)
    assert figures["associate_scaling_msgs_per_cpu_s_w1_r2"].value == 600 / 2.1
    assert figures["associate_scaling_cpu_bound_msgs_per_s_w1_r2"].ratio == 1.0
    share = figures["associate_scaling_busiest_replica_share_w4_r2"]
    assert (share.value, share.baseline) == (5.0 / 8.0, 0.5)
    assert "associate_scaling_busiest_replica_share_w4_r1" not in figures
