"""Testing aids: a local fake LLM server speaking the OpenAI and Anthropic HTTP APIs, and the pytest plugin
(`pytest --agentcache=record|replay`, `agentcache.testing.pytest_plugin`)."""
