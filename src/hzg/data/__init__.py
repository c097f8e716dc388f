"""Data side of the DAG: generation, detector response, n-tuple reading, preselection, kinematics,
resolution, features, samples and systematic variations."""
