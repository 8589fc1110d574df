"""Pass 2, the language fence: rejects what the compiler does not handle.

It runs first, so later passes can assume a known subset of Python, and
every refusal names the file and line.
"""

import ast

REFUSED = {
    ast.Try: "'try' statements inside an 'except' block",
    ast.AsyncFunctionDef: "async functions",
    ast.AsyncFor: "async loops",
    ast.AsyncWith: "async 'with'",
    ast.Await: "'await'",
    ast.Yield: "generators ('yield')",
    ast.YieldFrom: "generators ('yield from')",
    ast.ClassDef: "class definitions inside a differentiated function",
    ast.Delete: "'del' of an attribute",
    ast.JoinedStr: None,
}
if hasattr(ast, "TryStar"):
    REFUSED[ast.TryStar] = "'except*' (exception groups)"


def check(func, source):
    """Raises :class:`TransformError` at the first construct outside the
    supported subset in the function tree ``func``."""
    for node in ast.walk(func):
        reason = REFUSED.get(type(node), False)
        if isinstance(node, ast.Try) and not node.handlers and not node.orelse:
            reason = False         # body and finally, made by desugar
        if reason:
            raise source.error(f"cannot differentiate {reason}", node)
        if isinstance(node, ast.Call) and any(k.arg is None and not isinstance(
                k.value, ast.Name) for k in node.keywords):
            raise source.error("cannot differentiate calls with '**' arguments other than "
                               "a name", node)
        if isinstance(node, (ast.For, ast.While)) and node.orelse:
            raise source.error("cannot differentiate 'else' clauses of loops", node)
        if isinstance(node, ast.comprehension) and (node.is_async or not (
                isinstance(node.target, ast.Name) or isinstance(node.target, ast.Tuple) and
                all(isinstance(e, ast.Name) for e in node.target.elts))):
            raise source.error("comprehensions must iterate with names (x, or a, b)", node)
        if isinstance(node, ast.FunctionDef) and node is not func:
            if node.decorator_list:
                raise source.error("decorated nested functions", node)
        if isinstance(node, ast.AugAssign) and not isinstance(node.target,
                                                              (ast.Name, ast.Subscript)):
            raise source.error("augmented assignment into an attribute ('x.a += ...'): "
                               "write 'x.a = x.a + ...'", node)
