"""Step costs measured by rows (engine/costs.py): what the scheduler plans drafts and prefill budgets with."""

from pocketlm.engine.costs import StepCosts


def test_nothing_measured_means_no_estimate():
    costs = StepCosts()
    assert costs.estimate(1) is None
    assert costs.rows_within(1.0, at_least=16, at_most=512) == 16


def test_a_size_costs_the_fastest_of_its_latest_passes_as_other_work_only_adds_time():
    costs = StepCosts()
    for seconds in (0.010, 0.011, 0.009, 0.500, 0.010):  # one pass held up by other work
        costs.observe(4, seconds)
    assert costs.estimate(4) == 0.009
    for _ in range(15):  # the window moves on: what the latest passes cost is what counts
        costs.observe(4, 0.020)
    assert costs.estimate(4) == 0.020


def test_sizes_in_between_lie_on_the_line_and_beyond_grow_in_proportion():
    costs = StepCosts()
    costs.observe(1, 0.009)
    costs.observe(101, 0.109)
    assert abs(costs.estimate(51) - 0.059) < 1e-12  # between two measured sizes
    assert abs(costs.estimate(202) - 0.218) < 1e-12  # twice the largest: twice its cost
    assert costs.estimate(0) == 0.009  # a pass costs at least what the smallest did


def test_rows_within_a_time_is_the_largest_pass_expected_to_fit():
    costs = StepCosts()
    costs.observe(16, 0.050)
    costs.observe(528, 0.650)
    # 0.075 s allows 16 + (0.025 / (0.6 / 512)) rows: 37 rows
    assert costs.rows_within(0.075, at_least=16, at_most=2048) == 37
    assert costs.rows_within(0.001, at_least=20, at_most=2048) == 20  # never below the floor
