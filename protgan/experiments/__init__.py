"""Experiments above gan and classify: the paired comparison (`compare`) and the demo pipeline."""
