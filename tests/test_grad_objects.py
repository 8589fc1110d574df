"""Objects of the user's classes made inside a differentiated function are
refused at the line, with what to write instead (README, "What is not
supported")."""

import numpy as np
import pytest

import knet_st as kt


class Scale:
    def __init__(self, c):
        self.c = c

    def apply(self, h):
        return h * self.c


def made_with_gradients(w, x):
    s = Scale(w)
    return np.sum(s.apply(np.tanh(x)))


def method_of_a_made_object(w, x):
    s = Scale(2.0)
    return np.sum(s.apply(np.tanh(w * x)))


@pytest.mark.parametrize("fn, message", [
    (made_with_gradients, "objects of your class 'Scale' made here"),
    (method_of_a_made_object, r"'\.apply\(\)' \(the methods of objects made"),
])
def test_objects_made_inside_are_refused_at_their_line(fn, message):
    with pytest.raises(kt.TransformError, match=message) as info:
        kt.grad(fn)(np.ones(3), np.ones(3))
    assert info.value.lineno == fn.__code__.co_firstlineno + (1 if fn is made_with_gradients
                                                              else 2)
