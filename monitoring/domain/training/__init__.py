"""Training: estimators, versioned artifacts, predictions and scores, champion against challenger."""
