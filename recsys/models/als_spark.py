"""The `als` fit on Spark MLlib (als.engine = spark): for when the ratings outgrow one machine.

The fitted users x items matrix goes to Spark as Parquet files (user, item, value), written in
chunks of `PARQUET_CHUNK` ratings under a staging folder that every Spark executor can read (the
data home by default: fine for `local[*]`; on a cluster, a shared mount at the same path). Spark's
`ALS(implicitPrefs=True)` fits, writes its item factors back as Parquet, and they become the
`item_factors` array the implicit trainer produces: the artifact, the loaded `ALSModel` and every
answer are the same code for both engines.

Ids: Spark needs int ids, and our matrix rows and columns already are (int32); they go as they
are, so Spark's item ids ARE our column indexes. An item no user of the fit rated is absent from
Spark's factors and keeps a zero row: the `ALSModel` sign for "learned nothing".

Confidence: Spark's implicit ALS (Hu et al. 2008 with an ALS-WR twist) uses c = 1 + alpha * |r|
and preference 1 when r > 0. We send r = our confidence - 1 with Spark's alpha = 1, so both
engines weigh every rating alike (ALSModel.fit checks our confidence is above 1).

Regularisation: Spark multiplies its `regParam` by each user's (and item's) count of ratings
(ALS-WR, Zhou et al. 2008, "Large-scale Parallel Collaborative Filtering for the Netflix
Prize"); implicit adds the same lambda to every row. To keep one meaning of `als.regularization`
("lambda of a typical user"), Spark gets regParam = regularization / (mean ratings per fitted
user), so a user with the mean count gets exactly implicit's lambda, heavier users more, lighter
ones less. `ALSModel.solve_user` re-solves users the Spark way (lambda x their count / the mean).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import Conflict, MissingDependency
from recsys.models.base import ProgressFn

PARQUET_CHUNK = 1_000_000  # ratings per Parquet file: ~12 MB of columns in memory at a time
INSTALL_SPARK = "pip install 'recsys[spark]'"
MIN_JAVA = 17  # Spark 4 runs on Java 17 or 21


def require_spark() -> None:
    """MissingDependency (500) naming what to install when pyspark, pyarrow or Java 17+ is
    missing; checked before any data is written or a JVM is started."""
    try:
        import pyarrow  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            f"als.engine = spark needs pyspark and pyarrow ({exc.name} is not installed): "
            f"{INSTALL_SPARK}"
        ) from None
    java = find_java()
    if java is None:
        raise MissingDependency(
            f"als.engine = spark needs Java {MIN_JAVA}+: install a JDK "
            f"(e.g. apt-get install openjdk-{MIN_JAVA}-jre-headless) and put java on PATH or set "
            "JAVA_HOME"
        )
    version = java_major_version(java)
    if version is not None and version < MIN_JAVA:
        raise MissingDependency(
            f"als.engine = spark needs Java {MIN_JAVA}+, {java} is Java {version}: install a "
            f"JDK {MIN_JAVA} and point JAVA_HOME at it"
        )


def find_java() -> str | None:
    """The java Spark's launcher will run: $JAVA_HOME/bin/java when JAVA_HOME is set, else the
    one on PATH (what pyspark's spark-class script does)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if os.access(candidate, os.X_OK) else None
    return shutil.which("java")


def java_major_version(java: str) -> int | None:
    """17 for 'openjdk version "17.0.15"', 8 for '"1.8.0_392"'; None when it cannot be told."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def spark_session(master: str) -> Any:
    """The process's SparkSession (started once: a JVM takes seconds; later fits, e.g. the
    trials of `recsys tune`, reuse it). An already running session keeps its own master."""
    from pyspark.sql import SparkSession

    try:
        return (
            SparkSession.builder.master(master)
            .appName("recsys-als")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.log.level", "ERROR")
            .getOrCreate()
        )
    except Exception as exc:  # pyspark raises plain/py4j errors when the JVM cannot start
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MissingDependency(
            f"could not start Spark (master {master!r}): {first} (Spark needs Java {MIN_JAVA}+ "
            f"and {INSTALL_SPARK})"
        ) from None


def staging_root(setting: str) -> Path:
    """Where the Parquet files go: als.spark_staging (the service fills in <data home>/spark
    when it is empty; a direct library call with it empty uses the system's temp folder)."""
    root = Path(setting).expanduser() if setting else Path(tempfile.gettempdir()) / "recsys-spark"
    return root.resolve()  # Spark gets file: URIs, which must be absolute


def write_parquet(matrix: Any, folder: Path, chunk: int = PARQUET_CHUNK) -> int:
    """Write a users x items CSR matrix of confidences as Parquet part files of at most about
    `chunk` ratings each (user int32, item int32, value float32 = confidence - 1); whole users
    per file, so memory stays at one chunk. Returns the number of files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    indptr = matrix.indptr
    # Row boundaries every `chunk` ratings (a user heavier than a chunk gets a file of its own).
    cuts = np.unique(np.searchsorted(indptr, np.arange(0, indptr[-1], chunk), side="right") - 1)
    bounds = [*cuts.tolist(), matrix.shape[0]]
    files = 0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        start, end = indptr[lo], indptr[hi]
        if end == start:
            continue
        users = np.repeat(np.arange(lo, hi, dtype=np.int32), np.diff(indptr[lo : hi + 1]))
        table = pa.table(
            {
                "user": users,
                "item": matrix.indices[start:end].astype(np.int32),
                "value": (matrix.data[start:end] - 1.0).astype(np.float32),
            }
        )
        pq.write_table(table, folder / f"part-{files:05d}.parquet")
        files += 1
    return files


def read_factors(folder: Path, n_items: int, rank: int) -> np.ndarray:
    """Spark's item factors (Parquet: id int, features array<float>) as an n_items x rank
    float32 array indexed by our column index; items Spark never saw stay zero."""
    import pyarrow.parquet as pq

    table = pq.read_table(folder, columns=["id", "features"])
    ids = table.column("id").to_numpy()
    features = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    factors = np.zeros((n_items, rank), dtype=np.float32)
    factors[ids] = features.reshape(len(ids), rank)
    return factors


def fit_item_factors(
    fit_matrix: Any,
    params: dict[str, Any],
    factors: int,
    on_progress: ProgressFn | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Spark's implicit ALS on a users x items CSR matrix of confidences (> 1). Returns the
    item factors (items x factors float32, zero rows for items without ratings) and facts for
    the manifest (the regParam Spark got). MissingDependency (500) without pyspark/Java;
    Conflict (409) when Spark fails (its first error line)."""
    require_spark()
    weak = int((fit_matrix.data <= 1.0).sum())
    if weak:  # Spark reads r <= 0 as "not liked" where implicit still counts a positive
        raise Conflict(
            f"engine spark cannot weigh {weak:,} ratings whose confidence is not above 1 "
            "(ratings <= 0): use engine implicit or rescale the ratings"
        )
    iterations = int(params["iterations"])
    per_user = float(np.diff(fit_matrix.indptr).mean())
    reg_param = float(params["regularization"]) / per_user
    spark = spark_session(params["spark_master"])
    root = staging_root(params["spark_staging"])
    root.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix=f"als-{uuid.uuid4().hex[:8]}-", dir=root))
    if on_progress is not None:
        on_progress(0, iterations)  # Spark reports no per-iteration progress to Python
    try:
        write_parquet(fit_matrix, run / "ratings")
        from pyspark.ml.recommendation import ALS

        spark.sparkContext.setCheckpointDir((run / "checkpoints").as_uri())  # long lineages
        blocks = max(1, int(spark.sparkContext.defaultParallelism))
        als = ALS(
            rank=factors, maxIter=iterations, regParam=reg_param, implicitPrefs=True, alpha=1.0,
            userCol="user", itemCol="item", ratingCol="value", seed=int(params["random_state"]),
            numUserBlocks=blocks, numItemBlocks=blocks,
        )  # fmt: skip
        try:
            model = als.fit(spark.read.parquet((run / "ratings").as_uri()))
            model.itemFactors.write.parquet((run / "item_factors").as_uri())
        except Exception as exc:  # py4j/pyspark errors: keep the first line, not the JVM trace
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise Conflict(f"Spark ALS failed: {first}") from None
        item_factors = read_factors(run / "item_factors", fit_matrix.shape[1], factors)
    finally:
        shutil.rmtree(run, ignore_errors=True)
    if on_progress is not None:
        on_progress(iterations, iterations)
    return item_factors, {"spark_reg_param": reg_param, "spark_master": spark.sparkContext.master}
