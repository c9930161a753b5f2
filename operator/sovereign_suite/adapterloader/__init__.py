"""The LoRA adapter loader: a sidecar of the vLLM pods of a model that serves adapters (components/llm/adapters.py).
Standard library and backup/s3.py only: it runs in the backup image (Dockerfile.backup)."""
