"""Safe arithmetic for the offline model: find an expression in a question and evaluate it.

The expression is parsed with `ast` and walked node by node; only numbers, ``+ - * / // % **``
and parentheses are accepted, never names, calls or attributes, so nothing in a prompt can run
code. Exponents and results are bounded so ``9 ** 9 ** 9`` cannot eat the worker's memory.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Final

Number = int | float

_BINARY: Final[dict[type[ast.operator], Callable[[Number, Number], Number]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: Final[dict[type[ast.unaryop], Callable[[Number], Number]]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_MAX_EXPONENT: Final = 1_000
_MAX_MAGNITUDE: Final = 10**100
_MAX_LENGTH: Final = 200

# A run of numbers, operators, parentheses and spaces that contains at least one operator
# between two operands. Words around it ("What is", "?") are ignored.
_CANDIDATE: Final = re.compile(r"[-+(]*\s*\d[\d\s.+\-*/%()^×÷x]*")
_SYMBOLS: Final = str.maketrans({"×": "*", "÷": "/", "^": "**"})


class NotArithmetic(ValueError):
    """The text is not an arithmetic expression this evaluator accepts."""


def find_and_evaluate(text: str) -> tuple[str, Number] | None:
    """Find the longest arithmetic expression in ``text`` and evaluate it.

    Returns:
        ``(expression, value)``, with the expression as written (normalised spacing), or None
        when ``text`` holds no expression with an operator, or it cannot be evaluated safely.
    """
    best: tuple[str, Number] | None = None
    for match in _CANDIDATE.finditer(text):
        candidate = _trim(match.group())
        if not _has_operator(candidate) or (best is not None and len(candidate) <= len(best[0])):
            continue
        try:
            best = (candidate, evaluate(candidate))
        except NotArithmetic:
            continue
    return best


def evaluate(expression: str) -> Number:
    """Evaluate ``expression`` with only numbers, arithmetic operators and parentheses.

    Raises:
        NotArithmetic: For anything else, for division by zero, and for results too large.
    """
    if len(expression) > _MAX_LENGTH:
        raise NotArithmetic("expression too long")
    source = re.sub(r"(?<=[\d)\s])x(?=[\s\d(])", "*", expression.translate(_SYMBOLS))
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        raise NotArithmetic(str(error)) from None
    return _eval(tree.body)


def format_number(value: Number) -> str:
    """Format a result the way a person writes it: ``4``, ``2.5``, ``0.333333333333``."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(Decimal(repr(value)).normalize(), "f") if abs(value) >= 1e-6 else repr(value)
    return str(value)


def _eval(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > _MAX_EXPONENT or abs(left) > _MAX_MAGNITUDE):
            raise NotArithmetic("exponent too large")
        try:
            result = _BINARY[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError) as error:
            raise NotArithmetic(str(error)) from None
        if (
            isinstance(result, complex)
            or abs(result) > _MAX_MAGNITUDE
            or (isinstance(result, float) and not math.isfinite(result))
        ):
            raise NotArithmetic("result out of range")
        return result
    raise NotArithmetic(f"not arithmetic: {ast.dump(node)[:40]}")


def _trim(candidate: str) -> str:
    # A sentence may end in "." or leave an operator dangling ("2 + 2 =" has none, "2+2-" would).
    text = " ".join(candidate.split())
    text = text.rstrip(" .+-*/%^×÷x")
    # Unbalanced parentheses at the edges come from the surrounding prose.
    while text.startswith("(") and text.count("(") > text.count(")"):
        text = text[1:].lstrip()
    while text.endswith(")") and text.count(")") > text.count("("):
        text = text[:-1].rstrip()
    return text


def _has_operator(text: str) -> bool:
    body = text.lstrip("+-( ")
    return any(symbol in body for symbol in "+-*/%^×÷") or bool(re.search(r"\d\s*x\s*\d", body))
