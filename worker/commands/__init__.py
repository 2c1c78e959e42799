"""The operator's commands of the ``callbridge`` CLI: argument parsing and printing only; what
they do lives in ``handlers``, which the web console calls too.

Each module has ``add_arguments(parser)``, ``run_from_args(settings, args)`` and ``USES``: the
parts of the deployment it uses (``adapters.config.where``), named on its first line.
"""


class UsageError(Exception):
    """A command cannot do what it was asked (a file it cannot read, a body that breaks the
    contract): the message says what is wrong, in one line per problem."""
