"""Issue 12 regression tests, the solver side: time limits that are limits (one budget for the whole command,
reported when it binds, a sorted and re-costed top list), solver statuses that never masquerade as an SLO
failure, and the divisor search that a huge redundant-expert count used to stall."""

from __future__ import annotations

from cost_models.parallel import _divisors


def test_divisors_hand_checked():
    # 36 = 2^2 * 3^2: (2+1) * (2+1) = 9 divisors; sqrt(36) = 6 pairs 1-36, 2-18, 3-12, 4-9 and 6 once
    assert _divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36]
    assert _divisors(1) == [1]
    assert _divisors(97) == [1, 97]  # a prime: only the trivial pair


def test_divisors_of_a_billion_slots_come_from_the_square_root():
    # 256 routed experts + 1,000,000,001 redundant = 1,000,000,257 slots; the old linear loop took > 60 s, trial
    # division stops at sqrt = 31,623. 1,000,000,257 = 3 x 97 x 313 x 10,979 (91,083 x 10,979), four distinct primes,
    # so 2^4 = 16 divisors, 8 of them below the square root (not a square: each pairs with one above it).
    n = 256 + 1_000_000_001
    divs = _divisors(n)
    assert divs[0] == 1 and divs[-1] == n
    assert all(n % d == 0 for d in divs) and divs == sorted(divs)
    assert len(divs) == 16 and divs[:4] == [1, 3, 97, 291] and 10_979 in divs
