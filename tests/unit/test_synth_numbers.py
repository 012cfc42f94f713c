import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.synth.population import _unique_nhs_numbers


def _valid(number: int) -> bool:
    digits = [int(d) for d in f"{number:010d}"]
    return sum((10 - i) * d for i, d in enumerate(digits[:9])) % 11 == (11 - digits[9]) % 11 and (
        (11 - sum((10 - i) * d for i, d in enumerate(digits[:9])) % 11) % 11 != 10
    )


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3000))
def test_synthetic_nhs_numbers_are_valid_unique_9xx_and_not_placeholders(seed, n):
    numbers = _unique_nhs_numbers(np.random.default_rng(seed), n)
    assert len(numbers) == n == len(set(numbers.tolist()))
    assert all(9_000_000_000 <= x <= 9_999_999_999 for x in numbers.tolist())
    assert all(_valid(x) for x in numbers.tolist())
    assert not any(len(set(str(x))) == 1 for x in numbers.tolist())
