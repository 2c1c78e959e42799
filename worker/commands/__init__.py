"""The operator's commands of the ``callbridge`` CLI: argument parsing and printing only; what
they do lives in ``handlers``, which the web console calls too."""
