"""Shared CLI machinery: option parsing, logging configuration, exit codes.

Exit status: 0 success; 1 error (a :class:`~romancore.errors.RomancoreError` or bad
input: one line on stderr, a traceback only with ``--debug``); 64 no science data.
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import logging
import os
import sys
import traceback
from pathlib import Path

from romancore.errors import NoScienceDataError, ParameterError, RomancoreError

EXIT_OK, EXIT_ERROR, EXIT_NO_SCIENCE = 0, 1, 64

LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
          "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}
DEFAULT_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


class BreakLevelReached(RomancoreError):
    """A log message reached the ``break_level`` of the logging configuration."""


class _Section:
    def __init__(self, pattern, level, break_level, handlers):
        self.pattern, self.level, self.break_level, self.handlers = pattern, level, break_level, handlers


class _Dispatch(logging.Handler):
    """Routes each record to the last configuration section whose glob matches its logger."""

    def __init__(self, sections):
        super().__init__(logging.DEBUG)
        self.sections = sections

    def _section(self, name):
        found = None
        for s in self.sections:
            if fnmatch.fnmatchcase(name, s.pattern) or fnmatch.fnmatchcase("." + name, s.pattern):
                found = s
        return found

    def handle(self, record):
        s = self._section(record.name)
        if s is None or record.levelno < s.level:
            return False
        for h in s.handlers:
            if record.levelno >= h.level:
                h.handle(record)
        if s.break_level is not None and record.levelno >= s.break_level:
            raise BreakLevelReached(
                f"log message at {record.levelname} reached break_level in section [{s.pattern}]: "
                f"{record.getMessage()}"
            )
        return True

    def emit(self, record):  # pragma: no cover - handle() does the work
        pass


_INSTALLED: list[logging.Handler] = []


def _level(value, where):
    v = str(value).strip().upper()
    if v not in LEVELS:
        raise ParameterError(f"logging configuration {where}: level {value!r} must be one of {', '.join(LEVELS)}")
    return LEVELS[v]


def _make_handlers(spec: str, fmt: str, where: str):
    out = []
    for part in [p.strip() for p in spec.strip().strip('"').split(",") if p.strip()]:
        if part == "stderr":
            h = logging.StreamHandler(sys.stderr)
        elif part == "stdout":
            h = logging.StreamHandler(sys.stdout)
        elif part.startswith("file:"):
            h = logging.FileHandler(part[5:], mode="w")
        elif part.startswith("append:"):
            h = logging.FileHandler(part[7:], mode="a")
        else:
            raise ParameterError(f"logging configuration {where}: handler {part!r} must be "
                                 "stderr, stdout, file:NAME or append:NAME")
        h.setFormatter(logging.Formatter(fmt))
        out.append(h)
    return out


def read_logcfg(path) -> list[_Section]:
    """Parse an stpipe-style ini logging configuration (sections are logger-name globs)."""
    cp = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as fh:
            cp.read_file(fh)
    except (OSError, configparser.Error) as exc:
        raise ParameterError(f"logging configuration {path} cannot be read: {exc}") from exc
    sections = []
    for name in cp.sections():
        sec = cp[name]
        where = f"{path} [{name}]"
        level = _level(sec.get("level", "INFO"), where)
        brk = _level(sec["break_level"], where) if "break_level" in sec else None
        fmt = sec.get("format", DEFAULT_FORMAT)
        handlers = _make_handlers(sec.get("handler", "stderr"), fmt, where)
        sections.append(_Section(name, level, brk, handlers))
    return sections


def default_logcfg() -> Path | None:
    for p in (Path("stpipe-log.cfg"), Path.home() / "stpipe-log.cfg", Path("/etc/stpipe-log.cfg")):
        if p.is_file():
            return p
    return None


def configure_logging(*, logcfg=None, verbose: bool = False, debug: bool = False) -> None:
    """Configure the ``romancore`` (and ``py.warnings``) loggers for a CLI run.

    ``logcfg`` (or a default ``stpipe-log.cfg``) wins; otherwise WARNING and above go
    to stderr, everything with ``--verbose``/``--debug``.  Replaces what an earlier
    call installed; the root logger is not touched.
    """
    logger = logging.getLogger("romancore")
    for h in _INSTALLED:
        logger.removeHandler(h)
    _INSTALLED.clear()
    cfg = Path(logcfg) if logcfg else default_logcfg()
    if cfg is not None:
        handler = _Dispatch(read_logcfg(cfg))
    else:
        level = logging.DEBUG if (verbose or debug) else logging.WARNING
        handler = _Dispatch([_Section("*", level, None, _make_handlers("stderr", DEFAULT_FORMAT, "default"))])
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    _INSTALLED.append(handler)


# --------------------------------------------------------------------------- parsing
GLOBAL_FLAGS = {"--verbose": "verbose", "-v": "verbose", "--debug": "debug",
                "--disable-crds-steppars": "disable_crds_steppars",
                "--disable-crds-steppar": "disable_crds_steppars", "-h": "help", "--help": "help"}
GLOBAL_VALUED = {"--logcfg": "logcfg", "--save-parameters": "save_parameters",
                 "--save_parameters": "save_parameters", "--config-file": "config_file",
                 "--config_file": "config_file"}
# universal parameters that also have dashed spellings
DASHED = {"--output-dir": "output_dir", "--output-file": "output_file"}


def split_argv(argv: list[str]):
    """Split argv into (globals dict, parameter assignments [(name, value|None)], positionals)."""
    glob: dict = {"verbose": False, "debug": False, "disable_crds_steppars": False, "help": False,
                  "logcfg": None, "save_parameters": None, "config_file": None}
    assigns: list[tuple[str, str | None]] = []
    positional: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        key, eq, val = tok.partition("=")
        if tok == "--":
            positional.extend(argv[i + 1:])
            break
        if key in GLOBAL_FLAGS and not eq:
            glob[GLOBAL_FLAGS[key]] = True
        elif key in GLOBAL_VALUED:
            if not eq:
                if i + 1 >= len(argv):
                    raise ParameterError(f"option {key} needs a value")
                i += 1
                val = argv[i]
            glob[GLOBAL_VALUED[key]] = val
        elif tok.startswith("--"):
            name = DASHED.get(key, key[2:])
            if eq:
                assigns.append((name, val))
            elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                assigns.append((name, None))  # decided later: flag or value
                assigns[-1] = (name, _Pending(argv, i + 1))
                i += 1
            else:
                assigns.append((name, None))
        elif tok.startswith("-") and len(tok) > 1:
            raise ParameterError(f"unknown option {tok!r}")
        else:
            positional.append(tok)
        i += 1
    return glob, assigns, positional


class _Pending:
    """A value token that may belong to a boolean flag or be a positional input."""

    def __init__(self, argv, index):
        self.token = argv[index]


def build_overrides(cls, assigns):
    """Turn ``--name=value`` / ``--steps.s.p=value`` into ``(params, steps, leftovers)``.

    A bare boolean flag (``--save_results``) means True; a following token is taken as
    its value only if it reads as a boolean, otherwise it is a positional input.
    """
    from romancore.pipeline.pipeline import Pipeline

    params: dict = {}
    steps: dict = {}
    extra_positional: list[str] = []
    is_pipe = issubclass(cls, Pipeline)
    for name, value in assigns:
        if name.startswith("steps."):
            if not is_pipe:
                raise ParameterError(f"{cls.__name__} is a single step: --{name} does not apply")
            parts = name.split(".")
            if len(parts) != 3:
                raise ParameterError(f"--{name}: use --steps.<step>.<parameter>=VALUE")
            _, sname, pname = parts
            step_cls = _sub_class(cls, sname)
            target, spec = steps.setdefault(sname, {}), {p.name: p for p in step_cls.param_spec()}
        else:
            pname, target, spec = name, params, {p.name: p for p in cls.param_spec()}
        p = spec.get(pname)
        if isinstance(value, _Pending):
            if p is not None and p.type == "bool" and value.token.strip().lower() in (
                    "true", "false", "yes", "no", "1", "0", "on", "off"):
                value = value.token
            elif p is not None and p.type == "bool":
                extra_positional.append(value.token)
                value = None
            else:
                value = value.token
        if value is None:
            if p is not None and p.type == "bool":
                value = "true"
            else:
                raise ParameterError(f"option --{name} needs a value (--{name}=VALUE)")
        target[pname] = value
    return params, steps, extra_positional


def _sub_class(cls, sname):
    for n, scls in cls.step_defs:
        if sname in (n, scls.class_alias, scls.__name__, *scls.aliases):
            return scls
    raise ParameterError(
        f"{cls.__name__}: unknown step {sname!r}; steps are: {', '.join(n for n, _ in cls.step_defs)}"
    )


def help_text(cls, prog: str) -> str:
    from romancore.pipeline.pipeline import Pipeline

    head = [f"usage: {prog} [options] INPUT...", "",
            "options:",
            "  -h, --help                 show this help and exit",
            "  --logcfg FILE              logging configuration (ini, sections are logger globs)",
            "  --verbose, -v              log everything",
            "  --debug                    log everything and show tracebacks of errors",
            "  --save-parameters FILE     write the parameters used (.asdf or .yaml)",
            "  --disable-crds-steppars    accepted; romancore never fetches parameters from CRDS",
            "  --output-dir DIR, --output-file NAME  (same as --output_dir / --output_file)",
            "", "parameters (--name=VALUE; pipeline steps: --steps.<step>.<name>=VALUE):", ""]
    body = cls.help_text() if issubclass(cls, Pipeline) else __import__(
        "romancore.pipeline.step", fromlist=["step_help"]).step_help(cls)
    return "\n".join(head) + body + "\n"


# --------------------------------------------------------------------------- running
def run_class(cls, inputs, glob, params, steps, prog) -> int:
    """Configure and run *cls* on *inputs*; products are saved (save_results defaults True)."""
    from romancore.pipeline.pipeline import Pipeline

    if not inputs:
        raise ParameterError(f"{prog}: no input given (see --help)")
    params = dict(params)
    params.setdefault("save_results", "true")
    kwargs = dict(params)
    if issubclass(cls, Pipeline):
        obj = cls.from_config(glob["config_file"], steps=steps, **kwargs)
    else:
        obj = cls.from_config(glob["config_file"], **kwargs)
    if glob["save_parameters"]:
        obj.export_config(glob["save_parameters"])
    data = inputs[0] if len(inputs) == 1 else list(inputs)
    obj.run(data)
    return EXIT_OK


def guarded(prog: str, argv, body) -> int:
    """Run ``body(argv)`` and map exceptions to exit codes and one-line messages."""
    debug = "--debug" in argv
    try:
        return body(argv)
    except NoScienceDataError as exc:
        print(f"{prog}: no science data: {exc}", file=sys.stderr)
        if debug:
            traceback.print_exc()
        return EXIT_NO_SCIENCE
    except (RomancoreError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        if debug:
            traceback.print_exc()
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: say so, with the traceback
        print(f"{prog}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exc()
        return EXIT_ERROR


def pipeline_main(cls, prog: str, argv) -> int:
    """Shared body of romancore-elp / romancore-mos."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def body(argv):
        glob, assigns, positional = split_argv(argv)
        if glob["help"]:
            print(help_text(cls, prog))
            return EXIT_OK
        configure_logging(logcfg=glob["logcfg"], verbose=glob["verbose"], debug=glob["debug"])
        params, steps, extra = build_overrides(cls, assigns)
        return run_class(cls, positional + extra, glob, params, steps, prog)

    return guarded(prog, argv, body)


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description)


def is_param_file(token: str) -> bool:
    return os.path.splitext(token)[1].lower() in (".asdf", ".yaml", ".yml") and os.path.isfile(token) \
        and _looks_like_config(token)


def _looks_like_config(path: str) -> bool:
    """A parameter file has a top-level 'class' or 'parameters' key (science files do not)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536).decode("utf-8", "replace")
    except OSError:
        return False
    return any(line.startswith(("class:", "parameters:", "steps:")) for line in head.splitlines())
