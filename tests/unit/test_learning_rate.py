from __future__ import annotations

import pytest

from models.trainer.run_fn import cosine_learning_rate


def test_cosine_schedule_starts_at_the_base_rate_and_decays_towards_zero():
    schedule = cosine_learning_rate(1e-3, 12)
    rates = [schedule(epoch) for epoch in range(12)]
    assert rates[0] == pytest.approx(1e-3)
    assert rates[6] == pytest.approx(0.5e-3)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert 0 < rates[-1] < 0.02 * 1e-3
