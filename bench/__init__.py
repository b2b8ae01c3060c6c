"""Benchmarks: cell throughput against torch.nn and naive loops, and inference latency."""
