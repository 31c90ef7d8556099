"""Performance estimated before labels: CBPE for classifiers, direct loss estimation for regressors."""
