from __future__ import annotations

import pytest

from mamba_worker.backends._arithmetic import NotArithmetic, evaluate, find_and_evaluate, format_number


@pytest.mark.parametrize(
    ("question", "expression", "answer"),
    [
        ("What is 2 + 2?", "2 + 2", "4"),
        ("what is (3+4)*2?", "(3+4)*2", "14"),
        ("Compute 10 / 4.", "10 / 4", "2.5"),
        ("What is 2^10?", "2^10", "1024"),
        ("How much is 7 x 6?", "7 x 6", "42"),
        ("And -3 + 5?", "-3 + 5", "2"),
        ("17 // 5 please", "17 // 5", "3"),
    ],
)
def test_finds_and_evaluates_the_expression_in_a_question(question: str, expression: str, answer: str) -> None:
    found = find_and_evaluate(question)

    assert found is not None
    assert (found[0], format_number(found[1])) == (expression, answer)


@pytest.mark.parametrize("text", ["The year 2024 was good", "Hello there", "", "1/0", "9 ** 9 ** 9"])
def test_text_without_a_safe_expression_finds_nothing(text: str) -> None:
    assert find_and_evaluate(text) is None


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "abs(-1)", "x", "[1, 2]", "1 if 1 else 2", "(1).real", "2 ** 5000", "1 < 2"],
)
def test_evaluate_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(NotArithmetic):
        evaluate(expression)


def test_evaluate_refuses_results_beyond_the_bound() -> None:
    with pytest.raises(NotArithmetic):
        evaluate("10 ** 200")


def test_format_keeps_integers_integral() -> None:
    assert format_number(4.0) == "4"
    assert format_number(10**20) == "100000000000000000000"
