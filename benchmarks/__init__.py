"""Benchmark scripts: speed and learning measurements that write JSON, Markdown and plots."""
