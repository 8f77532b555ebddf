"""Model output you can trust: from a model's text to a validated object, repaired, recovered, and labelled."""
