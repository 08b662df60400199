"""FlaQuM Triangle Study pipeline: the statistics and I/O behind the Snakemake DAG.

Modules, one per stage: ``config`` (config and codebooks), ``io`` (reading sources),
``simulate`` (the synthetic consortium), ``ingest``, ``validate``, ``scoring``,
``psychometrics`` and ``agreement``, ``multilevel``, ``outcomes``, ``report``.
"""

__version__ = "0.1.0"
