"""`kubectl hami`: a kubectl plugin (the `kubectl-hami` console script), with the services'
credentials loader."""
