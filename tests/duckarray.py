"""A stand-in for a GPU array, to test on the CPU that generated code and
adjoint rules reach the array only through NumPy's dispatch protocols
(``__array_ufunc__``, ``__array_function__``) and methods, as CuPy arrays
require: any implicit conversion to a NumPy array raises.  Reductions return
0-d arrays, as CuPy's do; there is no ``flags.writeable``, as on CuPy."""

import numpy as np

class Duck:
    """An array that NumPy functions reach only by dispatch."""
    def __init__(self, a): self.a = np.asarray(a)
    shape = property(lambda s: s.a.shape); ndim = property(lambda s: s.a.ndim)
    dtype = property(lambda s: s.a.dtype); size = property(lambda s: s.a.size)
    T = property(lambda s: Duck(s.a.T))
    def __array__(self, dtype=None, copy=None):
        raise TypeError("implicit conversion of a Duck array to NumPy")
    def __len__(self): return len(self.a)
    def __getitem__(self, i): return Duck(self.a[_un(i)])
    def __setitem__(self, i, v): self.a[_un(i)] = _un(v)
    def __array_ufunc__(self, uf, method, *args, **kw):
        args = [_un(x) for x in args]
        if 'out' in kw: kw['out'] = tuple(_un(o) for o in kw['out'])
        r = getattr(uf, method)(*args, **kw)
        return _wrap(r)
    def __array_function__(self, func, types, args, kwargs):
        return _wrap(func(*_un(args), **_un(kwargs)))
    def reshape(self, *s): return Duck(self.a.reshape(*s))
    def sum(self, *a, **k): return _wrap(self.a.sum(*a, **k))
    def astype(self, d, copy=True): return Duck(self.a.astype(d))
    def copy(self): return Duck(self.a.copy())
    def __float__(self): return float(self.a)
    def __bool__(self): return bool(self.a)
    def __repr__(self): return f"Duck({self.a!r})"
for op in ['add','sub','mul','truediv','pow','matmul','lt','le','gt','ge','eq','ne','and','or','mod','floordiv']:
    f = getattr(np, {'add':'add','sub':'subtract','mul':'multiply','truediv':'true_divide','pow':'power','matmul':'matmul','lt':'less','le':'less_equal','gt':'greater','ge':'greater_equal','eq':'equal','ne':'not_equal','and':'logical_and','or':'logical_or','mod':'mod','floordiv':'floor_divide'}[op])
    setattr(Duck, f'__{op}__', (lambda f: lambda s, o: f(s, o))(f))
    setattr(Duck, f'__r{op}__', (lambda f: lambda s, o: f(o, s))(f))
Duck.__neg__ = lambda s: np.negative(s)
Duck.__iadd__ = lambda s, o: np.add(s, o, out=(s,))
Duck.__isub__ = lambda s, o: np.subtract(s, o, out=(s,))
Duck.__imul__ = lambda s, o: np.multiply(s, o, out=(s,))
Duck.__itruediv__ = lambda s, o: np.true_divide(s, o, out=(s,))
def _un(x):
    if isinstance(x, Duck): return x.a
    if isinstance(x, tuple): return tuple(_un(v) for v in x)
    if isinstance(x, list): return [_un(v) for v in x]
    if isinstance(x, dict): return {k: _un(v) for k, v in x.items()}
    return x
def _wrap(r):
    if isinstance(r, (np.ndarray, np.generic)): return Duck(np.asarray(r))
    if isinstance(r, tuple): return tuple(_wrap(v) for v in r)
    if isinstance(r, list): return [_wrap(v) for v in r]
    return r
