"""The sampler on hand-made logits: each knob does what its name says."""

import numpy as np

from pocketlm.engine.params import GREEDY_BELOW, SamplingParams
from pocketlm.engine.sampling import Sampler, sample

V = 50


def draw(params, logits, n=400, prompt=(1, 2)):
    sampler = Sampler(params, list(prompt), 0, frozenset({V - 1}))
    return [int(sample(logits.copy()[None, :], [sampler])[0]) for _ in range(n)]


def peaked():
    logits = np.full(V, -5.0, dtype=np.float32)
    logits[[3, 7, 11]] = [4.0, 3.5, 3.0]
    return logits


def test_greedy_picks_the_argmax():
    assert set(draw(SamplingParams(temperature=0), peaked(), n=5)) == {3}


def test_top_k_keeps_only_the_k_best():
    assert set(draw(SamplingParams(top_k=2, seed=1), peaked())) <= {3, 7}


def test_top_p_keeps_the_nucleus():
    # token 3 holds ~51% of the mass, 3 and 7 together ~82%: a 0.6 nucleus is exactly {3, 7}
    assert set(draw(SamplingParams(top_p=0.6, seed=2), peaked())) == {3, 7}


def test_min_p_drops_unlikely_tokens():
    assert set(draw(SamplingParams(min_p=0.5, seed=3), peaked())) <= {3, 7}


def test_plain_temperature_sampling_follows_the_distribution():
    logits = peaked()
    picks = draw(SamplingParams(temperature=1.0, seed=4), logits, n=3000)
    p = np.exp(logits.astype(np.float64))
    p /= p.sum()
    assert abs(picks.count(3) / 3000 - p[3]) < 0.04


def test_same_seed_same_draws():
    a = draw(SamplingParams(temperature=1.0, seed=9), peaked(), n=50)
    b = draw(SamplingParams(temperature=1.0, seed=9), peaked(), n=50)
    assert a == b


def test_a_sampler_draws_its_generators_numbers_in_order_across_blocks():
    """Draws come 64 at a time; a seed's numbers (and so its text) are those of one draw per token."""
    sampler = Sampler(SamplingParams(temperature=1.0, seed=9), [1], 0, frozenset())
    one_by_one = np.random.default_rng(9)
    assert [sampler.draw() for _ in range(150)] == [one_by_one.random() for _ in range(150)]


def test_ignore_eos_bans_end_of_generation_tokens():
    logits = peaked()
    logits[V - 1] = 50.0
    assert V - 1 not in draw(SamplingParams(temperature=0, ignore_eos=True), logits, n=3)
    assert draw(SamplingParams(temperature=0), logits, n=1) == [V - 1]


def test_frequency_penalty_discourages_repeats():
    logits = np.zeros(V, dtype=np.float32)
    logits[5] = 1.0
    sampler = Sampler(SamplingParams(temperature=0, frequency_penalty=2.0), [0], 0, frozenset())
    first = int(sample(logits.copy()[None, :], [sampler])[0])
    second = int(sample(logits.copy()[None, :], [sampler])[0])
    assert first == 5 and second != 5


def test_a_penalty_near_zero_gives_finite_logits_and_no_warning():
    import warnings

    logits = np.zeros(V, dtype=np.float32)
    logits[4] = 2.0  # token 6 stays at exactly 0: 0 / (1e-300 as float32 = 0) is NaN before the clip
    sampler = Sampler(SamplingParams(temperature=0, repetition_penalty=1e-300), [4, 6], 0, frozenset())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adjusted = sampler.adjust(logits.copy())
        assert np.isfinite(adjusted).all() and adjusted[4] >= 1e30 and adjusted[6] == 0
        # sampled, at any temperature (the fuzzer's repeat_penalty 5e-324 overflowed the division by 0.8)
        for temperature, top_p in ((0.8, 1.0), (GREEDY_BELOW, 0.95), (100.0, 0.5)):
            params = SamplingParams(temperature=temperature, top_p=top_p, repetition_penalty=5e-324, seed=1)
            sampler = Sampler(params, [4, 6], 0, frozenset())
            assert [int(sample(logits.copy()[None, :], [sampler])[0]) for _ in range(5)] == [4] * 5


def test_repetition_penalty_covers_the_prompt():
    logits = np.zeros(V, dtype=np.float32)
    logits[[4, 6]] = [2.0, 1.9]
    sampler = Sampler(SamplingParams(temperature=0, repetition_penalty=1.5), [4], 0, frozenset())
    assert int(sample(logits[None, :], [sampler])[0]) == 6


def _nucleus_by_full_sort(logits, p):
    """top-p by definition: every token sorted (ties by id), the shortest run from the top reaching top_p."""
    probs = np.exp(logits / p.temperature - (logits / p.temperature).max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    cut = int(np.searchsorted(np.cumsum(probs[order]), p.top_p, side="left")) + 1
    return order[:cut]


def test_top_p_keeps_exactly_the_nucleus_of_a_full_sort_flat_or_peaked_ties_included():
    from pocketlm.engine.sampling import distribution

    rng = np.random.default_rng(0)
    for spread, ties in ((0.5, False), (3.0, False), (8.0, False), (4.0, True)):
        logits = (rng.standard_normal(49152) * spread).astype(np.float32)
        if ties:  # many tokens share a logit, at the nucleus's edge too
            logits = np.round(logits, 1)
        params = SamplingParams(temperature=0.8, top_p=0.95)
        ids, probs = distribution(logits, Sampler(params, [], 0, frozenset()))
        expected = _nucleus_by_full_sort(logits, params)
        assert np.array_equal(ids, expected), (spread, ties, ids.size, expected.size)
        assert abs(probs.sum() - 1) < 1e-9
