"""Token codes: unguessable (>= 128 bits from the OS CSPRNG), URL-safe, unique."""

from __future__ import annotations

import base64
import re

from shared.codes import CODE_BYTES, MAX_CODE_LENGTH, new_code

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def test_a_code_carries_at_least_128_random_bits():
    assert CODE_BYTES * 8 >= 128
    code = new_code()
    raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    assert len(raw) * 8 >= 128


def test_a_code_is_url_safe_and_fits_the_contracts_limit():
    for _ in range(200):
        code = new_code()
        assert URL_SAFE.match(code), code
        assert 22 <= len(code) <= MAX_CODE_LENGTH


def test_codes_do_not_repeat_over_many_draws():
    codes = [new_code() for _ in range(50_000)]
    assert len(set(codes)) == len(codes)


def test_codes_share_no_common_prefix_that_would_shrink_the_search_space():
    firsts = {new_code()[0] for _ in range(2_000)}
    assert len(firsts) > 50  # 64 symbols possible: the first character is random too
