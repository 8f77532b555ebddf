"""Learner input handling: audio decoding and the SSRF-safe audio_url fetch (input, not a provider)."""
