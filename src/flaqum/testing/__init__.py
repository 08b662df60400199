"""Test and benchmark support: nothing here is used by the pipeline.

It ships with the package because benchmark scripts need it as well as the tests, and a
researcher can use it to try the report stage or a recovery study without the DAG:

``standin``
    Stand-in statistics (raw means with normal-theory intervals) in the columns of the
    multilevel and psychometrics files, so that the report stage can be tested, benchmarked
    (``bench/render_reports.py --standins``) and previewed without fitting the models.
``recovery``
    Estimates against a generated consortium's truth (``flaqum.simulate``): score a generated
    wave with the package's own stages, assemble what the hypotheses read, and put the stated
    (latent) truth on the metric of the observed scores (``tests/test_recovery.py``,
    ``bench/coverage.py``).

Helpers that only the tests use (for example the statsmodels MixedLM oracle of the multilevel
tests) live in ``tests/support/`` instead.
"""
