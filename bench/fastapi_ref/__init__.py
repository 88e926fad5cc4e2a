"""The FastAPI reference: the benchmark's product API written as FastAPI's documentation teaches."""
