"""The benchmark: methods x paired datasets x metrics, cached, with paper-style reports."""
