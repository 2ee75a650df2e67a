"""FastLLM."""
