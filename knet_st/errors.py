"""The one error type of the compiler."""


class TransformError(Exception):
    """Code that ``kt.grad`` cannot differentiate.

    Attributes:
        filename: the file of the offending code (``None`` if unknown).
        lineno: its line number in that file (``None`` if unknown).
        line: the offending source line, stripped.

    The message names all three, e.g.::

        model.py:12: cannot differentiate 'try' statements
            try:
    """

    def __init__(self, message, filename=None, lineno=None, line=None):
        self.reason = message
        self.filename = filename
        self.lineno = lineno
        self.line = line
        where = f"{filename}:{lineno}: " if filename and lineno else ""
        text = f"{where}{message}"
        if line:
            text += f"\n    {line}"
        super().__init__(text)
