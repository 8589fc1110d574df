"""The ``knet-st`` command (also ``python -m knet_st``).

Usage::

    knet-st list                              the examples, one line each
    knet-st run EXAMPLE [options]             run one (knet-st run EXAMPLE --help)
    knet-st grad FILE_OR_MODULE:FUNCTION [--wrt N]
                                              print the generated gradient source
    knet-st bench [options]                   the benchmark table (knet-st bench --help)

Errors (an unknown example, missing data, a function that cannot be
differentiated) print one message on stderr and give a non-zero exit status.
"""

import argparse
import importlib
import importlib.util
import os
import sys

PROG = "knet-st"

USAGE = f"""\
usage: {PROG} <command> [arguments]

Knet's tutorial in Python, with gradients by source transformation.

commands:
  list                             list the examples
  run EXAMPLE [options]            run an example ({PROG} run EXAMPLE --help)
  grad FILE_OR_MODULE:FUNCTION [--wrt N]
                                   print the source kt.grad generates for FUNCTION
  bench [options]                  the tutorial's benchmark table ({PROG} bench --help)

options:
  -h, --help                       show this help
  --version                        show the version
"""


def _error(message, status=2):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


# ---------------------------------------------------------------------------
# list, run
# ---------------------------------------------------------------------------

def cmd_list(argv):
    """Prints the examples, one line each."""
    from knet_st import examples
    if argv:
        return _error(f"list takes no arguments, got {' '.join(argv)}")
    width = max(map(len, examples.EXAMPLES))
    for name, (_, _, description) in examples.EXAMPLES.items():
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_run(argv):
    """Runs an example with the remaining arguments as its options."""
    from knet_st import examples
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {PROG} run EXAMPLE [options]\n\nexamples: "
              f"{', '.join(examples.names())}\n"
              f"options of one example: {PROG} run EXAMPLE --help")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in examples.EXAMPLES:
        return _error(f"unknown example {name!r}; the examples are "
                      f"{', '.join(examples.names())} ({PROG} list)")
    try:
        examples.main(name, rest, prog=f"{PROG} run {name}")
    except SystemExit as e:
        return _exit_status(e.code)
    return 0


def _exit_status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------
# grad
# ---------------------------------------------------------------------------

class CliError(Exception):
    """An error reported as one line on stderr and a non-zero exit."""
    pass


def _wrt(text):
    try:
        parts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a parameter position or positions such as 0 or 0,1; "
            f"got {text!r}") from None
    if not parts or any(p < 0 for p in parts):
        raise argparse.ArgumentTypeError(f"positions must be 0 or more, got {text!r}")
    return parts[0] if len(parts) == 1 and "," not in text else tuple(parts)


def load_function(spec):
    """The function named by ``FILE.py:NAME`` or ``package.module:NAME``
    (``NAME`` may be dotted: ``module:Class.method``)."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise CliError(f"expected FILE_OR_MODULE:FUNCTION, e.g. "
                       f"examples/housing.py:loss, got {spec!r}")
    if where.endswith(".py") or os.sep in where or "/" in where or os.path.isfile(where):
        module = _load_file(where)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise CliError(f"cannot import module {where!r}: {e}") from None
        except Exception as e:
            raise CliError(f"importing {where!r} failed: {type(e).__name__}: {e}") from None
    obj = module
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"{where} has no function {name!r}") from None
    if not callable(obj):
        raise CliError(f"{where}:{name} is a {type(obj).__name__}, not a function")
    return obj


def _load_file(path):
    if not os.path.isfile(path):
        raise CliError(f"no such file: {path}")
    path = os.path.abspath(path)
    base = os.path.splitext(os.path.basename(path))[0]
    modname = "_knet_st_cli_" + "".join(c if c.isalnum() else "_" for c in base)
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module           # for inspect and dataclasses
    folder = os.path.dirname(path)
    sys.path.insert(0, folder)              # its sibling modules, as `python FILE`
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(modname, None)
        raise CliError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:
        sys.modules.pop(modname, None)
        raise CliError(f"running {path} failed: {type(e).__name__}: {e}") from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return module


def cmd_grad(argv):
    """Prints the generated gradient source of FILE_OR_MODULE:FUNCTION."""
    import knet_st as kt
    p = argparse.ArgumentParser(
        prog=f"{PROG} grad",
        description="Print the forward and backward functions that kt.grad "
                    "generates for a function: kt.source(kt.grad(f, wrt=N)).")
    p.add_argument("function", metavar="FILE_OR_MODULE:FUNCTION",
                   help="e.g. examples/housing.py:loss or knet_st.examples.mnist:loss")
    p.add_argument("--wrt", type=_wrt, default=0, metavar="N",
                   help="position of the parameter to differentiate (default 0; "
                        "several: 0,1)")
    args = p.parse_args(argv)
    try:
        fn = load_function(args.function)
        try:
            g = kt.grad(fn, wrt=args.wrt)
        except ValueError as e:             # no parameter at that position
            raise CliError(f"--wrt: {e}") from None
        text = kt.source(g)
    except CliError as e:
        return _error(str(e), 1)
    except kt.TransformError as e:          # names the file and line
        return _error(str(e), 1)
    except TypeError as e:                  # not a function kt.grad accepts
        return _error(f"cannot differentiate {args.function}: {e}", 1)
    sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------

def cmd_bench(argv):
    """Runs the benchmark table (knet_st.bench) with the remaining arguments as its options."""
    from knet_st import bench
    try:
        return _exit_status(bench.main(argv, prog=f"{PROG} bench"))
    except SystemExit as e:
        return _exit_status(e.code)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

COMMANDS = {"list": cmd_list, "run": cmd_run, "grad": cmd_grad, "bench": cmd_bench}


def main(argv=None):
    """Entry point of ``knet-st``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        sys.stderr.write(USAGE)
        return 2
    command, rest = argv[0], argv[1:]
    if command in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if command == "--version":
        from knet_st import __version__
        print(f"knet_st {__version__}")
        return 0
    if command not in COMMANDS:
        return _error(f"unknown command {command!r}; the commands are "
                      f"{', '.join(COMMANDS)} ({PROG} --help)")
    try:
        return COMMANDS[command](rest)
    except SystemExit as e:                 # argparse: --help, bad options
        return _exit_status(e.code)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                 # knet-st grad ... | head
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
