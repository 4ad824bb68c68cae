"""Command-line entry points (argparse); each module has ``main(argv=None) -> int``."""
