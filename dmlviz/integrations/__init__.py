"""Record runs from other training frameworks: :mod:`dmlviz.integrations.pml` (pytorch-metric-learning's trainers)."""
