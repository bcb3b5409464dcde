"""Evaluation: benchmark readers (`benchmarks`), held-out synthetic scenes (`heldout`), the
evaluation run beside trivial baselines (`run`, `report`) and the checkpoint history of the
scheduled re-evaluation (`history`, `reevaluation`)."""
