"""The CLI's text tables: aligned columns, numbers right-aligned, text left-aligned."""

from __future__ import annotations

from cli.common import table


def test_columns_are_aligned_to_the_widest_cell():
    out = table(["token_id", "points"], [["abc", "5"], ["a-much-longer-id", "12345"]])
    lines = out.splitlines()
    assert lines[0] == "token_id          points"
    assert lines[1] == "----------------  ------"
    assert lines[2] == "abc                    5"
    assert lines[3] == "a-much-longer-id   12345"


def test_negative_numbers_are_right_aligned_too():
    out = table(["delta"], [["-5"], ["100"]])
    assert out.splitlines()[2:] == ["   -5", "  100"]


def test_no_rows_gives_just_the_header():
    assert table(["a", "bb"], []).splitlines() == ["a  bb", "-  --"]


def test_lines_carry_no_trailing_spaces():
    out = table(["name", "note"], [["x", ""], ["longer", "y"]])
    assert all(line == line.rstrip() for line in out.splitlines())
