"""Domain models below every other layer: requests, what a model must answer, and what the API returns."""
