"""agentcache."""
