"""Operations: health and readiness probes, metrics."""
