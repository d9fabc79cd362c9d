"""Tables for many traces: ``rpctrace index`` writes Parquet, ``rpctrace query`` reads it.

* :mod:`~rpctrace.tables.schema` - the tables (``calls``, ``failures``, ``processes``,
  ``traces``), their typed columns and the schema version, declared once;
* :mod:`~rpctrace.tables.inputs` - files, directories and compressed inputs -> one task per trace;
* :mod:`~rpctrace.tables.rows` - the rows of one trace (ids, hosts, days); the pipeline's
  :func:`rpctrace.pipeline.extract.extract` fills them (a pure function of the file);
* :mod:`~rpctrace.tables.store` - the layout on disk, written a file set per trace, atomically;
* :mod:`~rpctrace.tables.run` - the tasks in this process, a process pool, or a Dask cluster;
* :mod:`~rpctrace.tables.query` - DuckDB views over the committed files, the named queries.

pyarrow (Apache-2.0), DuckDB (MIT) and Dask distributed (BSD-3-Clause) are optional extras
(``rpctrace[index]``, ``rpctrace[cluster]``); nothing else in rpctrace imports them.
"""
