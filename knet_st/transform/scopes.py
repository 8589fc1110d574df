"""Pass 1c, scopes: names that live outside the function's own frame,
written as reads and writes of objects the compiler can follow.

* ``import m as n`` inside the function: the statement goes, and ``n`` is
  looked up like a global (the module is imported when the function is
  transformed, as its first call would);
* ``nonlocal v`` in a nested function: ``v`` becomes a one-element list, a
  cell, as CPython keeps it: ``v_cell = [v]`` in the function that binds
  ``v``, and ``v_cell[0]`` wherever ``v`` was read or written.  The nested
  function (lifted) then changes its argument ``v_cell``, which the effects
  pass follows like any other list passed to a helper;
* ``global g``: reads and writes of ``g`` become ``module_globals['g']``, the
  module's own dictionary; ``nonlocal v`` in the differentiated function
  itself, ``closure_cells['v']``, its closure cell.
"""

import ast
import importlib

from .facts import fact, set_fact

GLOBALS = "module_globals"      # the name the module's dictionary is bound to
CELLS = "closure_cells"         # the name the function's closure cells are bound to


def _scope_nodes(body):
    """The nodes of a body, not entering nested functions (which are yielded
    themselves)."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.Lambda)):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _binds(func, var):
    """Whether ``var`` is a local of ``func`` (a parameter or assigned, and
    not declared nonlocal or global)."""
    declared = {n for node in _scope_nodes(func.body)
                if isinstance(node, (ast.Nonlocal, ast.Global)) for n in node.names}
    if var in declared:
        return False
    params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    return var in params or any(
        isinstance(n, ast.Name) and n.id == var and isinstance(n.ctx, ast.Store)
        for n in _scope_nodes(func.body))


class _Replace(ast.NodeTransformer):
    """``var`` read or written anywhere in a scope (and the nested functions
    that do not bind it) as ``make()``."""

    def __init__(self, var, make):
        self.var = var
        self.make = make

    def visit_FunctionDef(self, node):
        if _binds(node, self.var):
            return node
        self.generic_visit(node)
        return node

    def visit_Name(self, node):
        if node.id != self.var:
            return node
        return ast.copy_location(self.make(node.ctx), node)

    def visit_Nonlocal(self, node):
        node.names = [n for n in node.names if n != self.var]
        return node if node.names else None

    visit_Global = visit_Nonlocal


def _cells(scope, taken):
    """Rewrites the variables of ``scope`` that nested functions declare
    ``nonlocal`` as cells; then the same inside each nested function."""
    children = [n for n in _scope_nodes(scope.body) if isinstance(n, ast.FunctionDef)]
    wanted = []
    for child in children:
        for node in ast.walk(child):
            if isinstance(node, ast.Nonlocal):
                wanted += [v for v in node.names if v not in wanted and _binds(scope, v)]
    params = {a.arg for a in ast.walk(scope.args) if isinstance(a, ast.arg)}
    for var in wanted:
        cell = var + "_cell"
        while cell in taken:
            cell += "_"
        taken.add(cell)

        def make(ctx, cell=cell):
            return ast.Subscript(value=ast.Name(cell, ast.Load()), slice=ast.Constant(0),
                                 ctx=ctx)

        first = scope.body[0] if scope.body else scope
        initial = ast.Name(var, ast.Load()) if var in params else ast.Constant(None)
        _Replace(var, make).visit(ast.Module(body=scope.body, type_ignores=[]))
        scope.body.insert(0, ast.copy_location(ast.Assign(
            targets=[ast.Name(cell, ast.Store())],
            value=ast.List(elts=[initial], ctx=ast.Load())), first))
    for child in children:
        _cells(child, taken)


class Cells:
    """The closure cells of a function as a dictionary: ``cells['v']`` reads
    and writes the variable ``v`` of the enclosing Python function."""

    def __init__(self, cells):
        self.cells = cells

    def __getitem__(self, var):
        return self.cells[var].cell_contents

    def __setitem__(self, var, value):
        self.cells[var].cell_contents = value


def _outer(func, kind, holder):
    """``global g`` anywhere (``kind`` Global), or ``nonlocal v`` of the
    function itself (``kind`` Nonlocal: a variable of the Python function
    around it): ``g`` as ``holder['g']`` in the whole tree."""
    nodes = ast.walk(func) if kind is ast.Global else _scope_nodes(func.body)
    declared = [v for node in nodes if isinstance(node, kind) for v in node.names]
    for var in dict.fromkeys(declared):
        def make(ctx, var=var):
            return ast.Subscript(value=ast.Name(holder, ast.Load()),
                                 slice=ast.Constant(var), ctx=ctx)

        replace = _Replace(var, make)
        replace.visit_FunctionDef = lambda node: (replace.generic_visit(node), node)[1]
        replace.visit(func)
    return bool(declared)


def _imports(func):
    """The import statements of ``func``, removed: ``[(name, module, attribute,
    level)]`` meaning ``name = module.attribute`` (the module itself when
    ``attribute`` is None); a plain ``import a.b`` binds ``a``."""
    found = []

    class Remove(ast.NodeTransformer):
        def visit_Import(self, node):
            for alias in node.names:
                if alias.asname:
                    found.append((alias.asname, alias.name, None, 0))
                else:                            # import a.b: a, with a.b loaded
                    importlib.import_module(alias.name)
                    found.append((alias.name.split(".")[0], alias.name.split(".")[0],
                                  None, 0))
            return None

        def visit_ImportFrom(self, node):
            for alias in node.names:
                if alias.name == "*":
                    raise SyntaxError("import *")
                found.append((alias.asname or alias.name, node.module or "", alias.name,
                              node.level))
            return None

    Remove().visit(func)
    return found


def outer_names(func, source):
    """Rewrites ``func`` (see the module doc) and records its imports (and the
    module dictionary, if ``global`` was used) as the fact ``imports``."""
    taken = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
    _cells(func, taken)
    uses_globals = _outer(func, ast.Global, GLOBALS)
    uses_cells = _outer(func, ast.Nonlocal, CELLS)
    try:
        imports = _imports(func)
    except SyntaxError:
        raise source.error("cannot differentiate 'from ... import *' inside a function",
                           func) from None
    if uses_globals:
        imports.append((GLOBALS, None, None, 0))
    if uses_cells:
        imports.append((CELLS, None, None, 0))
    for stmt in ast.walk(func):
        if isinstance(stmt, (ast.FunctionDef, ast.For, ast.While, ast.If)) and not stmt.body:
            stmt.body = [ast.Pass()]
    set_fact(func, "imports", tuple(imports))
    return func


def imported(func, module_globals, cells):
    """``{name: object}`` for the imports recorded on ``func`` (imported now),
    the module dictionary and the closure ``cells`` (``{name: cell}``) under
    their names where ``global`` or ``nonlocal`` was used."""
    out = {}
    package = module_globals.get("__package__")
    for bound, module, attribute, level in fact(func, "imports", ()):
        if module is None:
            out[bound] = module_globals if bound == GLOBALS else Cells(cells)
            continue
        base = importlib.import_module("." * level + module, package) if module else \
            importlib.import_module("." * level, package)
        if attribute is None:
            out[bound] = base
        elif hasattr(base, attribute):
            out[bound] = getattr(base, attribute)
        else:
            out[bound] = importlib.import_module(f"{base.__name__}.{attribute}")
    return out
