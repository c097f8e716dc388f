"""Training side of the DAG: the classifiers (neural models and boosted trees), their losses, training and
inference (`Classifier`)."""
