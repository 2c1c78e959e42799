"""The operator's commands of the ``callbridge`` CLI: argument parsing and printing only; what
they do lives in ``handlers``, which the web console calls too."""

from __future__ import annotations

import argparse

from schemas.platform import is_campaign_id


def campaign_id(text: str) -> int:
    """A campaign id on the command line: 1 to 2^63 - 1, as the stores hold it."""
    value = int(text)
    if not is_campaign_id(value):
        raise argparse.ArgumentTypeError("must be a campaign id from 1 to 2^63 - 1")
    return value
