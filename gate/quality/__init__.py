"""The quality side of the gate: eval-set config (``spec``), compact per-example outcomes
(``examples``) and the decision on quality metrics, parity and trade-off rules (``decide``)."""
