"""romancore-asn: write an association from a list of files (like asn_from_list).

    romancore-asn -o detector_asn.json --product-name r0000101001001001001_0001_WFI_cal data/*_cal.asdf
"""

from __future__ import annotations

import sys

from romancore.errors import ParameterError

from . import common

PROG = "romancore-asn"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body(argv):
        from romancore.associations import DEFAULT_RULE, asn_from_list, save_asn

        parser = common.make_parser(PROG, "Write a JSON association of FILES with one product.")
        parser.add_argument("-o", "--output-file", required=True, help="association file to write (.json)")
        parser.add_argument("--product-name", required=True, help="name of the product")
        parser.add_argument("-r", "--rule", default=DEFAULT_RULE, help="asn_rule (default %(default)s)")
        parser.add_argument("--asn-type", default="None", help="asn_type (default %(default)s)")
        parser.add_argument("-i", "--asn-id", default="a3001", help="asn_id (default %(default)s)")
        parser.add_argument("--target", default="none", help="target, e.g. a skycell name")
        parser.add_argument("--exptype", default="science", help="exptype of every member")
        parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
        parser.add_argument("files", nargs="+", help="member files")

        def fail(message):
            raise ParameterError(message)

        parser.error = fail
        args = parser.parse_args(argv)
        if not args.output_file.lower().endswith(".json"):
            raise ParameterError(f"-o {args.output_file}: an association file name must end in .json")
        asn = asn_from_list([(f, args.exptype) for f in args.files], args.product_name,
                            with_exptype=True, rule=args.rule, asn_type=args.asn_type,
                            asn_id=args.asn_id, target=args.target)
        save_asn(asn, args.output_file)
        return common.EXIT_OK

    return common.guarded(PROG, argv, body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
