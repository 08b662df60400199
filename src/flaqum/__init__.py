"""FlaQuM Triangle Study pipeline: the statistics and I/O behind the Snakemake DAG.

Modules, one per stage: ``config`` (config and codebooks), ``io`` (reading sources),
``simulate`` (the synthetic consortium), ``ingest``, ``validate``, ``scoring``,
``psychometrics`` (with ``cfa``, ``agreement`` and ``invariance``), ``multilevel`` (the fits) and
``multilevel_tables`` (the stage's tables), ``outcomes``, ``report``. ``testing`` is test and
benchmark support, not used by the pipeline.
"""

__version__ = "0.1.0"
