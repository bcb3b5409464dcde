"""Evaluation on public benchmarks: readers of their archive layouts (`benchmarks`)."""
