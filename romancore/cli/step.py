"""romancore-step: run a step or pipeline by alias, class path or parameter file (like strun).

    romancore-step roman_elp r..._uncal.asdf --steps.ramp_fit.algorithm=likely
    romancore-step flat_field r..._cal.asdf --override_flat=my_flat.asdf
    romancore-step params.asdf r..._uncal.asdf
"""

from __future__ import annotations

import sys

from romancore.errors import ParameterError

from . import common

PROG = "romancore-step"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body(argv):
        from romancore.pipeline.config import load_config
        from romancore.pipeline.registry import resolve_class

        glob, assigns, positional = common.split_argv(argv)
        if not positional:
            if glob["help"]:
                print(f"usage: {PROG} STEP_OR_PIPELINE_OR_PARAMETER_FILE INPUT... [options]\n"
                      "  STEP: an alias (roman_elp, roman_mos, flat_field, ...), a class path, "
                      "or a parameter file.\n  Use '--help' after STEP to list its parameters.")
                return common.EXIT_OK
            raise ParameterError(f"{PROG}: give a step, pipeline or parameter file first (see --help)")
        first, inputs = positional[0], positional[1:]
        if common.is_param_file(first):
            cfg = load_config(first)
            if not cfg.get("class"):
                raise ParameterError(f"parameter file {first} has no 'class' entry")
            cls = resolve_class(str(cfg["class"]))
            if glob["config_file"]:
                raise ParameterError("give the parameter file either first or with --config-file, not both")
            glob["config_file"] = first
        else:
            cls = resolve_class(first)
        if glob["help"]:
            print(common.help_text(cls, f"{PROG} {first}"))
            return common.EXIT_OK
        common.configure_logging(logcfg=glob["logcfg"], verbose=glob["verbose"], debug=glob["debug"])
        params, steps, extra = common.build_overrides(cls, assigns)
        return common.run_class(cls, inputs + extra, glob, params, steps, PROG)

    return common.guarded(PROG, argv, body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
