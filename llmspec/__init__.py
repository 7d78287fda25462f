"""llmspec: Terraform for LLM operations."""

__version__ = "0.1.0"
