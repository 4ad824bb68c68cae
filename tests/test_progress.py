"""Progress reporting: a redrawn bar on terminals, log lines otherwise."""

import io
import logging

from romancore.progress import Progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_bar_redraws_and_ends_with_newline():
    out = _Tty()
    p = Progress(3, "exposures", stream=out)
    for _ in range(3):
        p.advance()
    text = out.getvalue()
    assert text.count("\r") == 3
    assert "3 of 3 exposures" in text and text.endswith("\n")
    assert "1 of 3 exposures" in text and "ETA" in text


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    logger = logging.getLogger("romancore.progress")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        p = Progress(2, "exposures", stream=out)
        p.advance()
        p.advance()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert out.getvalue() == ""
    lines = [r.getMessage() for r in handler.records]
    assert lines[0].startswith("progress: 1 of 2 exposures") and lines[1].startswith("progress: 2 of 2")


def test_single_item_reports_nothing():
    out = _Tty()
    Progress(1, stream=out).advance()
    assert out.getvalue() == ""
