"""What a serving process runs besides HTTP, none of it importing Litestar: the per-worker state
(model refresher, readiness, status counts), training jobs in their own processes, and the
settings handed from `recsys serve` to its workers and jobs. `recsys.http` adapts it to routes.
"""
