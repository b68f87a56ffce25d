"""Python numbers read from traced tensors during a capture (``loss.item()``).

``item()`` on a traced tensor returns a ``TracedFloat``: a float (so a metrics dict, a format string
or ``loss.item() / math.log(2)`` work as usual) that remembers how it was computed — the buffer it
was read from and the arithmetic done on it since. The compiled step returns such values by
evaluating that expression on the replay's buffers. Deciding anything with one (``if``, ``<``,
``bool``) would fix the decision at capture time, so it raises ``UncapturableError`` naming the line.
"""
import operator

from .errors import UncapturableError, user_line


class Expression:
    """``function(*operands)``; an operand is an Expression, a buffer read (``Item``) or a number."""

    def __init__(self, function, operands, symbol):
        self.function, self.operands, self.symbol = function, operands, symbol

    def evaluate(self, slots):
        return self.function(*[_evaluate(x, slots) for x in self.operands])

    def buffers(self):
        return [i for x in self.operands if isinstance(x, (Expression, Item)) for i in x.buffers()]

    def __str__(self):
        if len(self.operands) == 1:
            return f"{self.symbol}({self.operands[0]})"
        return f"({self.operands[0]} {self.symbol} {self.operands[1]})"


class Item:
    """The number in buffer ``index`` (a one-element array), as ``array.item()`` gives it."""

    def __init__(self, index):
        self.index = index

    def evaluate(self, slots):
        return slots[self.index].item()

    def buffers(self):
        return [self.index]

    def __str__(self):
        return f"item(%{self.index})"


def _evaluate(operand, slots):
    return operand.evaluate(slots) if isinstance(operand, (Expression, Item)) else operand


def _arithmetic(function, symbol, reflected=False):
    """A TracedFloat operator: the float result, and the expression that recomputes it."""
    def method(self, other):
        if not isinstance(other, (int, float)):
            return NotImplemented
        left, right = (other, self) if reflected else (self, other)
        expression = Expression(function, [_expression_of(left), _expression_of(right)], symbol)
        return TracedFloat(function(float(left), float(right)), expression)
    return method


def _expression_of(value):
    return value.expression if isinstance(value, TracedFloat) else float(value)


def _refuse(what):
    def method(self, *args):
        raise UncapturableError(f"{what} of a value read from a traced tensor (.item()) decides something "
                                f"at capture time that a replay would not decide again, at {user_line()}. "
                                "Return the value from the step instead, or keep the decision outside it")
    return method


class TracedFloat(float):
    """A float read from a traced tensor, with the ``Expression`` that recomputes it on a replay."""

    def __new__(cls, value, expression):
        number = super().__new__(cls, value)
        number.expression = expression
        return number

    __add__, __radd__ = _arithmetic(operator.add, "+"), _arithmetic(operator.add, "+", True)
    __sub__, __rsub__ = _arithmetic(operator.sub, "-"), _arithmetic(operator.sub, "-", True)
    __mul__, __rmul__ = _arithmetic(operator.mul, "*"), _arithmetic(operator.mul, "*", True)
    __truediv__, __rtruediv__ = _arithmetic(operator.truediv, "/"), _arithmetic(operator.truediv, "/", True)
    __pow__, __rpow__ = _arithmetic(operator.pow, "**"), _arithmetic(operator.pow, "**", True)

    def __neg__(self):
        return TracedFloat(-float(self), Expression(operator.neg, [self.expression], "-"))

    __lt__ = __le__ = __gt__ = __ge__ = _refuse("a comparison")
    __eq__ = __ne__ = _refuse("an equality test")
    __bool__ = _refuse("the truth")
    __hash__ = float.__hash__
