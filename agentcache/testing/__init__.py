"""Testing aids: a local fake LLM server speaking the OpenAI and Anthropic HTTP APIs."""
