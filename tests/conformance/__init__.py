"""huggingface_hub's own integration tests, run against the sandbox (`python -m tests.conformance.run`)."""
