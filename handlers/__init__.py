"""One module per step of a call request: accept it, create its campaign, fetch its report."""
